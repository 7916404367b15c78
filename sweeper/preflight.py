"""Checks that run before anything expensive (Ray, Aim, trials): names, paths, the cluster address,
and the atomic claim of a sweep directory.

Each check raises a one-line UserError (exit 2) naming the input, what must hold and what was given.
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from trm_core.errors import UserError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAME_RULE = "letters, digits, '_', '-' or '.', starting with a letter or digit (no '/', no leading '.')"


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
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_probe.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{key}: {path} cannot be created or written: {exc.strerror or exc}") from None


def check_paths(spec, create: bool) -> None:
    """storage and aim.repo: directories (or creatable), each named by its spec key when it is not."""
    for path, key in ((spec.storage, "storage"), (spec.aim_repo, "aim.repo")):
        check_dir(path, key, create=False)  # both checked before either is created
    if create:
        for path, key in ((spec.storage, "storage"), (spec.aim_repo, "aim.repo")):
            check_dir(path, key, create=True)


def claim_sweep_dir(storage: Path, name: str) -> tuple[str, Path]:
    """Create STORAGE/NAME exclusively; when taken, NAME-YYYYmmdd-HHMMSS, then -2, -3, ...

    `mkdir` without exist_ok is atomic, so sweeps started at the same moment never share a directory.
    """
    storage.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidates = [name, f"{name}-{stamp}"] + [f"{name}-{stamp}-{i}" for i in range(2, 1000)]
    for candidate in candidates:
        try:
            (storage / candidate).mkdir()
            return candidate, storage / candidate
        except FileExistsError:
            continue
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
