"""The Aim adapter: the only module that imports aim.

One Aim run per Ray trial, written from the driver by a Tune callback, so workers on other nodes
need no access to the repo and no two processes write one run. A run holds the hparams (the
trial's sampled and constant keys, plus its seed), the sweep's name, the trial id, the seed, the
configuration id shared by the seeds of one sampled configuration, the full resolved trainer
config, and every metric the trainer reports: `train/loss` is tracked as `loss` in context
{subset: train}, `eval/exact_acc` as `exact_acc` in {subset: eval}, against the trainer's `step`.
A non-scalar metric (an evaluation table) is tracked as aim.Text holding its JSON. A trial's
test-time scaling plot data (`eval_tts_figures`, sweeper.trainable) becomes aim.Image figures in
context {subset: eval_tts}, drawn by trm_core.infer.plots.

Aim is a record, not a dependency of the sweep: when the repo cannot be opened or stops taking
writes, one warning says so, the sweep goes on (its metrics stay in Tune's results under
`tune/trial_*/result.json`), and `python -m sweeper aim-sync NAME` writes them later (`sync_sweep`).
A resumed trial continues its run. A run whose trial is not in the resumed experiment (the driver
was killed before Tune saved that trial) is closed as `orphaned` and archived, so the UI and
`query_runs` show one run per trial.
At its end a sweep adds its runs to the repo's index (`reindex(repo, hashes)`: SDK queries and the
UI list only indexed runs), one process at a time (`index_lock`).
A trial's run is named `SWEEP/CONFIG_ID/seedN` (`SWEEP/PHASE/CONFIG_ID/seedN` in a replicate phase)
and tagged `sweep:SWEEP`, `phase:PHASE` (search, replicate_N) and `config:CONFIG_ID`, so Aim's UI
groups the seeds of a configuration, or a sweep's phases, in one click (tags, or the param
`sweep.config_id`). Runs of a replicate phase also carry the tag `replicate`; `attach_report` puts a
sweep's report (table and plots) in its experiment as one more run, tagged `report`,
`sweep:SWEEP` and `phase:report`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from ray import tune

from trm_core.errors import write_text_atomic

from sweeper import interrupt
from sweeper.results import DIVERGED_KEY


def ensure_repo(path: str | os.PathLike) -> Path:
    """Create the Aim repo before any writer exists (parallel first writers would race)."""
    import aim

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
    import gc

    import aim
    from aim.sdk.index_manager import RepoIndexManager

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


def _warn_unavailable(repo, exc: BaseException, sweep: str) -> None:
    """One warning per repo and process, however many places find Aim unavailable."""
    if str(repo) in _WARNED:
        return
    _WARNED.add(str(repo))
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    print(f"warning: Aim repo {repo} is unavailable ({type(exc).__name__}: {first}): this sweep's metrics are not"
          f" recorded in Aim from now on; they stay in Tune's results, and `python -m sweeper aim-sync {sweep}`"
          f" writes them to Aim later", file=sys.stderr)


def ensure_repo_or_warn(path, sweep: str, out=None) -> bool:
    try:
        ensure_repo(path)
        return True
    except Exception as exc:  # any Aim or storage failure: the sweep goes on without Aim
        _warn_unavailable(path, exc, sweep)
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
    from aim.sdk.configs import get_aim_repo_name

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
    import io

    import aim
    from aim.sdk.index_manager import RepoIndexManager

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
    import aim

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


def _split_key(key: str) -> tuple[str, dict[str, str]]:
    """'eval/halt_first/exact_acc' -> ('halt_first/exact_acc', {'subset': 'eval'})."""
    head, _, rest = key.partition("/")
    return (rest, {"subset": head}) if rest else (key, {})


def track_figures(run: Any, data: dict[str, Any], step: int) -> None:
    """The test-time scaling plots (accuracy vs depth / breadth / NFE, halting, residuals) as aim.Image."""
    import aim
    import matplotlib.pyplot as plt

    from trm_core.infer.plots import figures

    for name, fig in figures(data).items():
        run.track(aim.Image(fig), name=name, step=step, context={"subset": "eval_tts"})
        plt.close(fig)


def track_result(run, result: dict[str, Any], keys: list[str]) -> int:
    """Track one Tune result's metrics against the trainer's step; returns the step."""
    import aim

    step = int(result.get("step", result.get("training_iteration", 0)))
    for key in keys:
        value = result[key]
        name, context = _split_key(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                run.track(float(value), name=name, step=step, context=context)
        else:
            run.track(aim.Text(json.dumps(value, default=str)), name=name, step=step, context=context)
    run["last_step"] = step
    return step


SEARCH = "search"
"""The phase of a sweep's own trials (replicate phases are replicate_1, replicate_2, ...)."""


def run_name(sweep: str, info: dict[str, Any], phase: str | None = None) -> str:
    """`SWEEP/CONFIG_ID/seedN`, with the phase after the sweep outside the search: seeds of a
    configuration sit side by side in Aim's run list."""
    middle = f"{phase}/" if phase and phase != SEARCH else ""
    return f"{sweep}/{middle}{info['config_id']}/seed{info['seed']}"


def tags(sweep: str, phase: str, config_id: str | None = None) -> list[str]:
    return [f"sweep:{sweep}", f"phase:{phase}"] + ([f"config:{config_id}"] if config_id else [])


def new_run(repo: str, experiment: str, sweep: str, trial_id: str, info: dict[str, Any], phase: str | None = None):
    import aim

    phase = phase or SEARCH
    run = aim.Run(repo=repo, experiment=experiment, system_tracking_interval=None, capture_terminal_logs=False)
    run.name = run_name(sweep, info, phase)
    run["hparams"] = {**info["params"], "seed": info["seed"]}
    run["sweep"] = {"name": sweep, "trial_id": trial_id, "seed": info["seed"], "config_id": info["config_id"],
                    "phase": phase}
    for tag in tags(sweep, phase, info["config_id"]) + (["replicate"] if phase != SEARCH else []):
        run.add_tag(tag)
    run["config"] = info["config"]
    return run


def open_run(repo: str, run_hash: str):
    import aim

    return aim.Run(run_hash=run_hash, repo=repo, system_tracking_interval=None, capture_terminal_logs=False)


class AimCallback(tune.Callback):
    """Tune callback writing one Aim run per trial. Picklable until `setup` (Tuner pickles it)."""

    phase: str | None = None  # class default: callbacks pickled before `phase` existed still restore

    def __init__(self, repo: str, experiment: str, sweep: str, trial_info, state_file: str, phase: str | None = None):
        self.repo, self.experiment, self.sweep, self.phase = repo, experiment, sweep, phase
        self.trial_info, self.state_file = trial_info, state_file
        self._runs: dict[str, Any] = {}
        self._hashes: dict[str, str] = {}
        self._down = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runs"] = {}
        state["_down"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_down": False, **state})

    def _guard(self, fn, *args) -> None:
        """Run one Aim operation; the first failure warns once and turns Aim off for this sweep."""
        if self._down:
            return
        try:
            fn(*args)
        except Exception as exc:  # a locked, read-only, full or vanished repo: the sweep goes on
            self._down = True
            self._runs.clear()
            _warn_unavailable(self.repo, exc, self.sweep)

    def setup(self, **info) -> None:
        self._guard(self._setup)

    def _setup(self) -> None:
        if os.path.exists(self.state_file):  # a resumed sweep continues its trials' runs
            self._hashes = json.loads(Path(self.state_file).read_text())
        ensure_repo(self.repo)

    def _save_hashes(self) -> None:
        write_text_atomic(self.state_file, json.dumps(self._hashes, indent=1))

    def _open(self, trial) -> Any:
        run = self._runs.get(trial.trial_id)
        if run is not None:
            return run
        old = self._hashes.get(trial.trial_id)
        if old:
            run = open_run(self.repo, old)
        else:
            run = new_run(self.repo, self.experiment, self.sweep, trial.trial_id, self.trial_info(trial.config), self.phase)
            self._hashes[trial.trial_id] = run.hash
            self._save_hashes()
        run["status"] = "running"
        self._runs[trial.trial_id] = run
        return run

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._guard(self._open, trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        def track(run) -> None:
            step = track_result(run, result, self.trial_info.metric_keys(result))
            if isinstance(result.get("eval_tts_figures"), str):
                track_figures(run, json.loads(result["eval_tts_figures"]), step)

        self._guard(lambda: track(self._open(trial)))

    def _close(self, trial, status: str) -> None:
        run = self._open(trial)  # a trial can fail before its first result: it still gets its run
        del self._runs[trial.trial_id]
        run["status"] = status
        run["finished_at"] = time.time()
        run.close()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = trial.last_result or {}
        step = last.get("step")
        target = self.trial_info(trial.config)["cfg"].train.steps
        status = "diverged" if last.get(DIVERGED_KEY) else "stopped_early" if step is not None and step < target else "done"
        self._guard(self._close, trial, status)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._guard(self._close, trial, "error")

    def on_experiment_end(self, trials, **info) -> None:
        self._guard(self._end, trials)
        for run in self._runs.values():  # after a failure above, close what is open (best effort)
            try:
                run.close()
            except Exception:
                pass
        self._runs.clear()
        try:
            release(self.repo)
        except Exception:
            pass

    def _end(self, trials) -> None:
        stopped = "interrupted" if interrupt.interrupted() else "stopped"
        for trial_id in list(self._runs):
            run = self._runs.pop(trial_id)
            run["status"] = stopped
            run.close()
        known = {t.trial_id for t in trials}
        for trial_id, run_hash in self._hashes.items():
            if trial_id not in known:
                run = open_run(self.repo, run_hash)  # its trial never reached Tune's saved state
                run["status"] = "orphaned"
                run.archived = True
                run.close()


# ------------------------------------------------------------------------------------------------
# aim-sync: write to Aim what an outage left out, from Tune's own records of every trial.


def _results(trial_dir: Path) -> list[dict[str, Any]]:
    f = trial_dir / "result.json"
    if not f.exists():
        return []
    out = []
    for line in f.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn last line
    return out


def sync_sweep(d: Path, record: dict[str, Any]) -> str:
    """Create the missing Aim runs of sweep `d` and add the steps its runs lack; idempotent."""
    import aim

    from sweeper import results
    from sweeper.runner import trial_setup
    from sweeper.spec import validate
    from sweeper.sweeps import tune_dir

    spec = validate(record["spec_file"], record["spec"])
    spec.name = d.name
    repo = str(Path(record["aim_repo"]))
    experiment = spec.aim_experiment
    setup = trial_setup(spec, embedded=False)
    ensure_repo(repo)
    state_file = d / "aim_runs.json"
    hashes = json.loads(state_file.read_text()) if state_file.exists() else {}
    table = results.read_table(d / "results.csv") if (d / "results.csv").exists() else None
    status = dict(zip(table["trial_id"], table["status"])) if table is not None else {}
    created = extended = 0
    for trial_dir in sorted(tune_dir(d).glob("trial_*")):
        trial_id = trial_dir.name[len("trial_"):]
        rows = _results(trial_dir)
        if not rows:
            continue
        config = rows[-1].get("config") or json.loads((trial_dir / "params.json").read_text())
        # run_exists lists the runs' own storage, not the index: a run written before an outage or a
        # killed driver but never indexed is continued, not duplicated
        stored = bool(hashes.get(trial_id)) and aim.Repo.from_path(repo).run_exists(hashes[trial_id])
        if stored:
            run = open_run(repo, hashes[trial_id])
            last = run.get("last_step", -1)
        else:
            run, last = new_run(repo, experiment, spec.name, trial_id, setup(config)), -1
            hashes[trial_id] = run.hash
            write_text_atomic(state_file, json.dumps(hashes, indent=1))
            created += 1
        newer = [r for r in rows if int(r.get("step", -1)) > (last if last is not None else -1)]
        for r in newer:
            track_result(run, r, setup.metric_keys(r))
        extended += bool(newer and stored)
        run["status"] = status.get(trial_id, "unknown")
        run.close()
    reindex_or_warn(repo, hashes.values())
    if table is not None:
        table["aim_run"] = table["trial_id"].map(hashes)
        results.write_atomic(table, d)
    return f"aim-sync {spec.name}: {created} runs created, {extended} runs extended, Aim repo {repo}"


def attach_report(repo: str | os.PathLike, experiment: str, name: str, markdown: str,
                  images: dict[str, str | os.PathLike], summary: dict[str, Any], state_file: str | os.PathLike,
                  sweep: str | None = None) -> str:
    """Attach a report to a sweep's Aim experiment: one run named `{name}` (tag `report`) holding
    `report` (the headline numbers, as params: queryable), the markdown tables as aim.Text `report`
    and each plot as aim.Image `plot/{key}`. Making the report again adds a step to the same run
    (its hash is kept in `state_file`). Returns the run's hash."""
    import aim

    ensure_repo(repo)
    state = Path(state_file)
    old = json.loads(state.read_text()).get("hash") if state.exists() else None
    kwargs = dict(repo=str(repo), system_tracking_interval=None, capture_terminal_logs=False)
    run = aim.Run(run_hash=old, **kwargs) if old else aim.Run(experiment=experiment, **kwargs)
    step = int(run.get("report_count") or 0)
    run.name = name
    for tag in ["report", *tags(sweep or name.split("/")[0], "report")]:
        if tag not in run.tags:
            run.add_tag(tag)
    run["report_count"] = step + 1
    run["report"] = summary
    run.track(aim.Text(markdown), name="report", step=step)
    for key, path in images.items():
        run.track(aim.Image(str(path), caption=key), name=f"plot/{key}", step=step)
    run.close()
    write_text_atomic(state, json.dumps({"hash": run.hash}))
    reindex_or_warn(repo, [run.hash])
    return run.hash
