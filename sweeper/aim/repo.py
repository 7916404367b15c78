"""The Aim repo's life: created before any writer, released after every use, indexed under a lock,
queried. The Aim adapter (this package) is the only part of the sweeper that imports aim.

Aim is a record, not a dependency of the sweep: when the repo cannot be opened or stops taking
writes, one warning says so (`warn_unavailable`), the sweep goes on (its metrics stay in Tune's results
under `tune/trial_*/result.json`), and `python -m sweeper aim-sync NAME` writes them later
(sweeper.aim.sync). At its end a phase adds its runs to the repo's index (`reindex(repo, hashes)`:
SDK queries and the UI list only indexed runs), one process at a time (`index_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import io
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import aim
from aim.sdk.configs import get_aim_repo_name
from aim.sdk.index_manager import RepoIndexManager


def ensure_repo(path: str | os.PathLike) -> Path:
    """Create the Aim repo before any writer exists (parallel first writers would race)."""
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    try:
        aim.Repo.from_path(str(path), init=not aim.Repo.exists(str(path)))
    finally:
        release(path)
    return path


def release(path: str | os.PathLike) -> None:
    """Close what Aim keeps open in this process for the repo at `path`.

    Aim caches a Repo per path (with its RocksDB handles), a TTL cache keeps a reference to it, and
    reindexing starts an index manager whose watchdog threads never stop. Left open they live until
    the interpreter exits, and tearing down open RocksDB handles under running watcher threads at
    exit crashed a test process (exit 139) after all tests passed; so every use here ends with this.
    """
    root = str(Path(path).resolve()).rstrip("/")
    for key, manager in list(RepoIndexManager.index_manager_pool.items()):
        if str(Path(key).parent) == root:
            RepoIndexManager.index_manager_pool.pop(key, None)
            manager.stop()
    aim.Repo._all_run_hashes.cache_clear()
    repo = aim.Repo._pool.pop(root, None)
    if repo is not None:
        for container in [*repo.persistent_pool.values(), *repo.container_pool.values()]:
            container.close()
        repo.persistent_pool.clear()
        repo.close()
        del repo
    gc.collect()


_WARNED: set[str] = set()


def warn_unavailable(repo, exc: BaseException, sweep: str) -> None:
    """One warning per repo and process, however many places find Aim unavailable."""
    if str(repo) in _WARNED:
        return
    _WARNED.add(str(repo))
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    print(f"warning: Aim repo {repo} is unavailable ({type(exc).__name__}: {first}): this sweep's metrics are not"
          f" recorded in Aim from now on; they stay in Tune's results, and `python -m sweeper aim-sync {sweep}`"
          f" writes them to Aim later", file=sys.stderr)


def ensure_repo_or_warn(path, sweep: str) -> bool:
    """ensure_repo; on any failure one warning, and False: the sweep goes on without Aim."""
    try:
        ensure_repo(path)
        return True
    except Exception as exc:  # any Aim or storage failure: the sweep goes on without Aim
        warn_unavailable(path, exc, sweep)
        return False


INDEX_LOCK_WAIT_S = 600.0


@contextlib.contextmanager
def index_lock(path: str | os.PathLike, exclusive: bool, wait_s: float | None = None):
    """Hold `REPO/.aim/sweeper-index.lock` (flock): exclusive to write the index, shared to read it.

    One process at a time may write the index (RocksDB's lock: a second writer fails at once), and
    Aim's full rebuild deletes the index and builds it again, breaking any other process's lock on
    it. Two rebuilds at once (sweeps that ended together) failed on that lock, hung, or left an
    index without some runs, which SDK queries and the UI then do not list; and a reader that
    opens an index mid-rebuild takes it for corrupt and deletes it. So every index write and query
    here takes this lock, and waits for it (up to `wait_s`, default INDEX_LOCK_WAIT_S), then raises
    TimeoutError naming the repo. Aim's own indexers (`aim up`, `aim storage reindex`) do not take
    it. A repo that does not exist yet, or whose lock file cannot be opened (read-only), is not locked.
    """
    lock_file = Path(path).resolve() / get_aim_repo_name() / "sweeper-index.lock"
    try:
        f = open(lock_file, "a")
    except OSError:
        try:
            f = open(lock_file)  # a read-only repo: flock works on a read-only handle
        except OSError:
            yield
            return
    with f:
        wait_s = INDEX_LOCK_WAIT_S if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the Aim repo {path} was being indexed by another process for more than"
                                       f" {wait_s:.0f}s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def reindex(path: str | os.PathLike, hashes: Iterable[str] | None = None) -> None:
    """Fold runs into the repo index, so SDK queries and the UI list them.

    `hashes`: the runs to index (those a sweep, a report or aim-sync wrote), each as Aim's own
    indexer does it (`aim up` indexes runs this way), leaving the rest of the index alone; the cost
    grows with the sweep, not with the repo. None: rebuild the whole index from scratch, as `aim
    storage --repo PATH reindex -y` does (aim 3.29's command calls the same method), which Aim says
    not to do while `aim up` runs. Either holds `index_lock`.
    """
    with index_lock(path, exclusive=True):
        try:
            repo = aim.Repo.from_path(str(Path(path).resolve()))
            if hashes is None:
                with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
                    repo._recreate_index()
            else:
                manager = RepoIndexManager.get_index_manager(repo)
                for run_hash in dict.fromkeys(hashes):
                    if repo.run_exists(run_hash):
                        manager.index(run_hash)
        finally:
            repo = manager = None
            release(path)


def reindex_or_warn(path, hashes: Iterable[str] | None = None) -> None:
    try:
        reindex(path, hashes)
    except Exception as exc:
        print(f"warning: could not index the Aim repo {path} ({type(exc).__name__}: {exc}); `aim up` indexes"
              f" runs itself, or run `aim storage --repo {path} reindex -y` while no `aim up` runs", file=sys.stderr)


def hashes_in(state_file: str | os.PathLike) -> list[str]:
    """The run hashes in a sweep's aim_runs.json (trial id -> hash); [] when there is none."""
    try:
        return list(json.loads(Path(state_file).read_text()).values())
    except (OSError, ValueError, AttributeError):
        return []


def up_command(path: str | os.PathLike, port: int = 43800) -> str:
    return f"aim up --repo {shlex.quote(str(path))} --host 127.0.0.1 --port {port}"


def query_runs(path: str | os.PathLike, sweep: str, archived: bool = False) -> list[dict[str, Any]]:
    """The sweep's runs as plain dicts: hash, name, hparams, sweep attrs, status, tags, metric names per context.

    Archived runs (orphans of a killed driver) are left out unless `archived`."""
    out = []
    with index_lock(path, exclusive=False):
        try:
            for run in aim.Repo.from_path(str(Path(path).resolve())).iter_runs():
                sweep_attrs = run.get("sweep") or {}
                if sweep_attrs.get("name") != sweep or (run.archived and not archived):
                    continue
                metrics = sorted({(m.name, m.context.to_dict().get("subset", "")) for m in run.metrics()})
                out.append({"hash": run.hash, "name": run.name, "hparams": run.get("hparams") or {},
                            "sweep": sweep_attrs, "status": run.get("status"), "archived": run.archived,
                            "metrics": metrics, "experiment": run.experiment, "tags": sorted(run.tags)})
        finally:
            run = None
            release(path)
    return out
