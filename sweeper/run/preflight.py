"""Checks that run before anything expensive (Ray, Aim, trials): names, paths, the cluster address,
the data and the resources a trial needs, and the atomic claim of a sweep directory.

Each check raises a one-line UserError (exit 2) naming the input, what must hold and what was given;
`check_can_start` gathers every problem of the data and the resources into that one line, so a user
fixes them in one go. All of it runs before the sweep directory is claimed: a sweep that cannot start
leaves nothing behind (no `failed` sweep taking the name).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from trm_core.cli import data_build_command
from trm_core.data.store import read_meta
from trm_core.errors import UserError, probe_writable

from sweeper.errors import SpecError
from sweeper.run.sweeps import never_started
from sweeper.spec import DEFAULT_STORAGE, SweepSpec
from sweeper.spec.resources import check_fits, local_nodes
from sweeper.spec.spec import NAME_RE, NAME_RULE


def check_name(name: str, where: str = "--name") -> str:
    """A sweep name is one directory name under the storage root, never a path."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > 200:
        raise UserError(f"{where}: a sweep name must be {NAME_RULE}, but got {name!r}")
    return name


def check_dir(path: Path, key: str, create: bool) -> None:
    """`path` must be a directory we can write, or one we can create (`create` makes it now)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{key}: {path} must be a directory, but it is a file")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{key}: {path} cannot be created: {parent} is a file")
    if not create:
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"{key}: {path} cannot be created or written: {parent} is not writable")
        return
    try:
        probe_writable(path)
    except OSError as exc:
        raise UserError(f"{key}: {path} cannot be created or written: {exc.strerror or exc}") from None


def check_paths(spec: SweepSpec, create: bool) -> None:
    """storage and aim.repo: directories (or creatable), each named by its spec key when it is not."""
    for path, key in ((spec.storage, "storage"), (spec.aim_repo, "aim.repo")):
        check_dir(path, key, create=False)  # both checked before either is created
    if create:
        for path, key in ((spec.storage, "storage"), (spec.aim_repo, "aim.repo")):
            check_dir(path, key, create=True)


def resume_command(name: str, storage: Path) -> str:
    """`python -m sweeper resume NAME`, with --storage when the sweep is not under the default root."""
    extra = f" --storage {storage}" if Path(storage).resolve() != Path(DEFAULT_STORAGE).resolve() else ""
    return f"python -m sweeper resume {name}{extra}"


def _taken(storage: Path, name: str, where: str) -> UserError:
    """An explicit name that a sweep already has: refused, as `train --out` refuses a run directory."""
    d = storage / name
    try:
        status = json.loads((d / "sweep.json").read_text()).get("status", "?")
    except (OSError, ValueError, AttributeError):
        return UserError(f"{where} {name}: {d} already exists and is not a sweep; choose another {where}")
    return UserError(f"{where} {name}: a sweep of that name exists ({status}, {d}): `{resume_command(name, storage)}`"
                     f" continues it, or choose another {where}")


def _free(d: Path) -> bool:
    """Free to claim: absent, or a sweep that never started a trial (sweeper.run.sweeps.never_started).
    A directory that vanishes while it is read is being cleared by another claimer: free (the claim
    checks again under the lock)."""
    try:
        return not d.exists() or never_started(d)
    except FileNotFoundError:
        return True


def _mkdir_claim(d: Path) -> bool:
    """Atomically take `d`; a sweep directory that never started a trial is cleared and taken.

    Clearing holds a lock on the storage root, so two sweeps cannot both clear and take it; a plain
    `mkdir` by a third sweep in between wins, and this one then moves on (mkdir is atomic)."""
    try:
        d.mkdir()
        return True
    except FileExistsError:
        if not _free(d):
            return False
    with open(d.parent / ".claim.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _free(d):  # again, under the lock: another sweep may have cleared and taken it
            return False
        shutil.rmtree(d, ignore_errors=True)
        try:
            d.mkdir()
            return True
        except FileExistsError:
            return False


def _candidates(name: str) -> list[str]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return [name, f"{name}-{stamp}"] + [f"{name}-{stamp}-{i}" for i in range(2, 1000)]


def planned_sweep_dir(storage: Path, name: str, explicit: str | None = None) -> Path:
    """The directory `claim_sweep_dir` would claim now (for --dry-run); nothing is created."""
    if explicit:
        if not _free(storage / name):
            raise _taken(storage, name, explicit)
        return storage / name
    return next(storage / c for c in _candidates(name) if _free(storage / c))


def claim_sweep_dir(storage: Path, name: str, explicit: str | None = None) -> tuple[str, Path]:
    """Create STORAGE/NAME exclusively. A name the user gave (`explicit` says which flag gave it) that
    is taken is refused; the spec's own name, when taken, becomes NAME-YYYYmmdd-HHMMSS, then -2, -3, ...
    (several sweeps of one spec started at once each get a directory).

    `mkdir` without exist_ok is atomic, so sweeps started at the same moment never share a directory.
    """
    storage.mkdir(parents=True, exist_ok=True)
    if explicit:
        if not _mkdir_claim(storage / name):
            raise _taken(storage, name, explicit)
        return name, storage / name
    for candidate in _candidates(name):
        if _mkdir_claim(storage / candidate):
            return candidate, storage / candidate
    raise UserError(f"storage: no free sweep name for {name!r} under {storage}")  # pragma: no cover


HOW_TO_CONNECT = ("start a cluster with `ray start --head` and pass --address auto (or its host:port),"
                  " or leave out --address to run on an embedded local Ray")


def check_address(address: str | None, timeout_s: float = 5.0) -> None:
    """A host:port (or ray://, http:// address) must accept a TCP connection within `timeout_s`.

    `auto` is left to Ray, which fails fast when no local cluster runs.
    """
    if not address or address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise UserError(f"--address must be auto or HOST:PORT (e.g. 127.0.0.1:6379), but got {address!r}")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise UserError(f"--address {address}: no Ray cluster answers at {host}:{port} ({reason}); {HOW_TO_CONNECT}") from None


# ------------------------------------------------------------------------------------------------
# Can the sweep start here? Data and resources, every problem at once.


def data_paths(spec: SweepSpec) -> list[tuple[str, str]]:
    """(spec key, path) of every dataset directory a trial may read: the base config's data.path and
    any value the space gives data.path."""
    found = []
    if spec.base_cfg.data.path:
        found.append(("base.overrides.data.path", spec.base_cfg.data.path))
    p = spec.params.get("data.path")
    if p is not None:
        values = [p.value] if p.kind == "constant" else list(p.choices)
        found += [("space[data.path]", v) for v in values if v]
    return found


def data_problems(spec: SweepSpec) -> list[str]:
    """A dataset directory that is missing or unreadable, with the complete command that builds it."""
    problems = []
    data = spec.base_cfg.data
    for key, path in data_paths(spec):
        try:
            meta = read_meta(Path(path).expanduser())
        except UserError as exc:
            reason = f"{path} does not exist" if not Path(path).expanduser().exists() else str(exc)
            problems.append(f"{key}: {reason}; build it with: {data_build_command(data, out=path)}")
            continue
        side = meta["board_size"]
        if side != data.board_size and "data.board_size" not in spec.params:  # the trainer refuses it too
            problems.append(f"{key}: {path} holds {side}x{side} {meta['task']} puzzles, but data.board_size is"
                            f" {data.board_size}: set data.board_size={side} or build a {data.board_size}x"
                            f"{data.board_size} dataset")
    if not data_paths(spec) and (data.task == "sudoku-extreme" or not data.generated_ok):
        problems.append(f"base.overrides.data.path: data.task={data.task} is read from a dataset directory, not"
                        f" generated; build one with: {data_build_command(data)} and set data.path to it")
    return problems


def start_problems(spec: SweepSpec, local: bool) -> list[str]:
    """Every reason the sweep cannot start: the data (always) and, for the embedded local Ray
    (`local`), a trial shape this machine can never hold. A cluster's resources are checked once the
    sweep joins it (sweeper.run.cluster.connect)."""
    problems = data_problems(spec)
    if local:
        try:
            check_fits(spec, local_nodes())
        except SpecError as exc:
            problems.insert(0, str(exc).removeprefix(f"{spec.file}: "))
    return problems


def check_can_start(spec: SweepSpec, local: bool) -> None:
    """Raise one SpecError (one line) listing every problem of `start_problems`."""
    problems = start_problems(spec, local)
    if len(problems) == 1:
        raise SpecError(spec.file, "", problems[0])
    if problems:
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
        raise SpecError(spec.file, "", f"the sweep cannot start, {len(problems)} problems: {listed}")
