"""Run (or resume) a validated sweep: Ray Tune schedules, Optuna searches, Aim records.

Layout of a sweep directory `{storage}/{name}/`: `sweep.json` (spec, status, best, reason of a
failure), `results.csv` / `results.parquet`, `aim_runs.json` (trial id -> Aim run hash),
`trial_times.json` (start/end per trial), and `tune/`, Ray Tune's experiment directory (trial
folders, checkpoints, searcher state), kept apart because Ray syncs its directory's .json files.

Seeds: the searcher is wrapped in Ray's Repeater, so each sampled configuration runs once per seed
(the seed is chosen by the repeat index) and Optuna is told the mean over seeds. With ASHA each
seed-trial is judged on its own at every rung; a seed stopped at a rung contributes its value at
that rung to the mean, which penalises configurations that ASHA finds weak (search_spaces/README.md).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from trm_core.errors import UserError

from sweeper import interrupt, resources
from sweeper.errors import SpecError
from sweeper.preflight import HOW_TO_CONNECT, check_address
from sweeper.results import ENDED, read_table, summarize, top_table, write_json_atomic
from sweeper.spec import SweepSpec
from sweeper.sweeps import FORMAT, TUNE_SUBDIR, tune_dir
from sweeper.trainable import TrialSetup, run_trial


def sweep_dir(spec: SweepSpec) -> Path:
    return spec.storage / spec.name


def trial_setup(spec: SweepSpec, embedded: bool) -> TrialSetup:
    """The base config with every path made absolute (workers chdir into their trial directory)."""
    from trm_core.config import to_dict

    base = to_dict(spec.base_cfg)
    data = base["data"]
    if data["path"]:
        data["path"] = str(Path(data["path"]).expanduser().resolve())
    if data["cache_dir"]:
        data["cache_dir"] = str(Path(data["cache_dir"]).expanduser().resolve())
    elif embedded:  # one machine: pin the driver's cache so every trial shares it
        from trm_core.data.store import default_cache_dir

        data["cache_dir"] = str(Path(default_cache_dir()).expanduser().resolve())
    return TrialSetup(base=base, seeds=list(spec.seeds), cpu=spec.cpu, gpu=spec.gpu, final_eval=spec.final_eval,
                      metric=spec.metric)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def dashboard_options(host: str | None) -> dict[str, Any]:
    """ray.init options for the embedded Ray's dashboard: off unless asked for, and then on loopback
    unless a host is named; a non-loopback host gets a warning (the dashboard has no authentication
    and can submit jobs, i.e. run code on this machine)."""
    if host is None:
        return {"include_dashboard": False}
    if host not in LOOPBACK:
        print(f"warning: the Ray dashboard will listen on {host}:8265 without authentication: anyone who can"
              f" reach it can run code on this machine; prefer --dashboard (127.0.0.1) and an ssh tunnel",
              file=sys.stderr)
    return {"include_dashboard": True, "dashboard_host": host}


def connect(spec: SweepSpec, address: str | None, verbose: bool, dashboard: str | None = None) -> tuple[bool, list[resources.Node]]:
    """Join a cluster (`address`), reuse an initialised Ray, or start the embedded default.

    Returns (whether we started Ray and must stop it, the cluster's nodes); raises SpecError when no
    node can ever hold a trial.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = False
    if not ray.is_initialized():
        if address is None:
            local = resources.detect_local()
            resources.check_fits(spec, [local])  # fail before paying for a Ray start
            ray.init(num_cpus=int(local.cpu), num_gpus=int(local.gpu), log_to_driver=verbose,
                     logging_level=logging.WARNING, **dashboard_options(dashboard))
        else:
            init_ray(address, verbose)
        started = True
    nodes = resources.ray_nodes()
    try:
        resources.check_fits(spec, nodes)
    except SpecError:
        if started:
            ray.shutdown()
        raise
    return started, nodes


def init_ray(address: str, verbose: bool) -> None:
    """Join the cluster at `address`; an unreachable one is a one-line error naming it, within seconds."""
    import ray

    check_address(address)
    try:
        ray.init(address=address, log_to_driver=verbose, logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--address {address}: cannot join a Ray cluster there ({first}); {HOW_TO_CONNECT}") from None


def _trainable(setup: TrialSetup, spec: SweepSpec):
    from ray import tune

    return tune.with_resources(tune.with_parameters(run_trial, setup=setup), {"cpu": spec.cpu, "gpu": spec.gpu})


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def build_tuner(spec: SweepSpec, setup: TrialSetup, callbacks: list):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    from sweeper.optuna_space import DefineByRun, SeedRepeater, make_sampler
    from sweeper.progress import FailureBudget

    searcher = OptunaSearch(space=DefineByRun(spec.params), metric=spec.metric, mode=spec.mode,
                            sampler=make_sampler(spec), points_to_evaluate=spec.points_to_evaluate or None)
    searcher = SeedRepeater(searcher, repeat=len(spec.seeds), set_index=True)
    if spec.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="step", metric=spec.metric, mode=spec.mode, max_t=spec.max_t,
                                  grace_period=spec.grace_period, reduction_factor=spec.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=spec.total_trials,
                                  max_concurrent_trials=spec.max_concurrent, time_budget_s=spec.time_budget_s,
                                  reuse_actors=True, trial_dirname_creator=trial_dirname)
    stop = FailureBudget(str(sweep_dir(spec)), spec.max_failed_trials) if spec.max_failed_trials is not None else None
    run_config = tune.RunConfig(
        name=TUNE_SUBDIR, storage_path=str(sweep_dir(spec)), callbacks=callbacks, verbose=0, stop=stop,
        failure_config=tune.FailureConfig(max_failures=spec.max_retries),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )
    return tune.Tuner(_trainable(setup, spec), tune_config=tune_config, run_config=run_config)


def callbacks_for(spec: SweepSpec, setup: TrialSetup, stream=None) -> list:
    from sweeper.aim_log import AimCallback
    from sweeper.progress import ProgressCallback

    d = str(sweep_dir(spec))
    return [AimCallback(str(spec.aim_repo), spec.aim_experiment, spec.name, setup, f"{d}/aim_runs.json"),
            ProgressCallback(d, spec.name, spec.metric, spec.mode, spec.total_trials, setup, stream, spec.max_failed_trials)]


def _prebuild_data(setup: TrialSetup, out) -> None:
    """Build the base dataset once on the driver, so parallel trials find it cached."""
    from trm_core.config import from_dict
    from trm_core.data.store import build_from_config

    t0 = time.time()
    path = build_from_config(from_dict(setup.base).data)
    print(f"dataset: {path} ({time.time() - t0:.1f}s)", file=out)


def _start_record(spec: SweepSpec, record: dict[str, Any] | None, address: str | None) -> dict[str, Any]:
    """sweep.json at the start: the spec after --set (what `resume` rebuilds from), status running."""
    record = dict(record or {})
    record.pop("reason", None)
    record.update(format=FORMAT, name=spec.name, spec_file=spec.file, spec=spec.raw, storage=str(spec.storage),
                  aim_repo=str(spec.aim_repo), metric=spec.metric, mode=spec.mode, total_trials=spec.total_trials,
                  status="running", pid=os.getpid(), host=socket.gethostname(), address=address,
                  created_at=record.get("created_at", time.time()))
    write_json_atomic(sweep_dir(spec) / "sweep.json", record)
    return record


def run_sweep(spec: SweepSpec, *, address: str | None = None, resume: bool = False, verbose: bool = False,
              out=None, record: dict[str, Any] | None = None, dashboard: str | None = None) -> dict[str, Any]:
    """Run a sweep to the end (or resume one); returns the sweep record written to sweep.json.

    The sweep directory must exist (the CLI claims it). A sweep that stops on an error is recorded as
    `failed` with the reason before the error propagates; Ctrl-C or SIGTERM records `interrupted`.
    A new sweep that stops before Ray Tune saved any state (Ray would not start, the cluster cannot
    hold a trial, Ctrl-C during start-up) leaves nothing behind: its directory is removed, so its name
    is free for the next attempt.
    """
    out = out or sys.stdout
    d = sweep_dir(spec)
    d.mkdir(parents=True, exist_ok=True)
    record = _start_record(spec, record, address)
    try:
        return _run(spec, address, resume, verbose, out, record, dashboard)
    except KeyboardInterrupt:
        _end_record(d, record, "interrupted", remove=not resume)
        raise
    except UserError as exc:
        _end_record(d, record, "failed", str(exc), remove=not resume)
        raise
    except Exception as exc:
        _end_record(d, record, "failed", f"{type(exc).__name__}: {exc}", remove=not resume)
        raise


def _end_record(d: Path, record: dict[str, Any], status: str, reason: str | None = None, remove: bool = False) -> None:
    if remove and not (tune_dir(d) / "tuner.pkl").exists() and not (d / "results.csv").exists():
        shutil.rmtree(d, ignore_errors=True)  # it never started a trial: nothing to keep
        return
    record.update(status=status, finished_at=time.time())
    if reason:
        record["reason"] = " ".join(reason.split())[:500]
    write_json_atomic(d / "sweep.json", record)


class _Phases(dict):
    """Seconds per phase of a sweep's driver (sweep.json `phases_s`; benchmarks/bench_sweep_overhead.py)."""

    def __init__(self):
        super().__init__()
        self._t = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self[name] = round(now - self._t, 2)
        self._t = now


def _run(spec: SweepSpec, address: str | None, resume: bool, verbose: bool, out, record: dict[str, Any],
         dashboard: str | None = None) -> dict[str, Any]:
    phases = _Phases()
    from ray import tune

    from sweeper import aim_log
    from sweeper.optuna_space import quiet_optuna

    quiet_optuna()
    _quiet_tune()
    d = sweep_dir(spec)
    embedded = address is None
    setup = trial_setup(spec, embedded)
    phases.done("imports")
    # Ray's start is mostly waiting for its processes: prepare the Aim repo (an import and, for a new
    # repo, a migration subprocess) and the dataset in the meantime.
    with ThreadPoolExecutor(1) as pool:
        aim_ready = pool.submit(aim_log.ensure_repo_or_warn, spec.aim_repo, spec.name, out)
        data_ready = pool.submit(_prebuild_data, setup, out) if embedded else None
        try:
            started, nodes = connect(spec, address, verbose, dashboard)
        finally:
            aim_ok = aim_ready.result()
            if data_ready is not None:
                data_ready.result()
    phases.done("ray_aim_data")
    interrupt.install(verbose)
    try:
        conc = resources.concurrency(spec, nodes)
        print(f"sweep {spec.name}: {spec.total_trials} trials ({spec.num_samples} configurations x {len(spec.seeds)} seeds),"
              f" {conc} at a time on {resources.describe_nodes(nodes)}", file=out)
        t0 = time.time()
        if resume:
            tuner = tune.Tuner.restore(str(tune_dir(d)), trainable=_trainable(setup, spec), resume_unfinished=True,
                                       resume_errored=True)
        else:
            tuner = build_tuner(spec, setup, callbacks_for(spec, setup))
        phases.done("tuner")
        try:
            tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl-C skips Tune's clean stop
            interrupt.INTERRUPTED.set()
        wall = time.time() - t0
        phases.done("fit")
    finally:
        interrupt.uninstall()
        with ThreadPoolExecutor(1) as pool:  # index the Aim repo while Ray stops
            if aim_ok:
                pool.submit(aim_log.reindex_or_warn, spec.aim_repo, aim_log.hashes_in(d / "aim_runs.json"))
            if started:
                import ray

                ray.shutdown()
    phases.done("ray_stop_aim_index")
    status, errors, reason = _final_status(d, spec, wall if not resume else None)
    record.update(status=status, wall_s=round(wall, 2), finished_at=time.time(), errors=errors)
    record.pop("reason", None)
    if reason:
        record["reason"] = reason
    record["best"] = _best(d, spec)
    record["phases_s"] = dict(phases)
    write_json_atomic(d / "sweep.json", record)
    print_summary(record, spec, out)
    return record


def _quiet_tune() -> None:
    """Our progress line replaces Tune's tables; its checkpoint-sync warning fires on every small trial.

    Tune's strict metric check is off because a diverged trial's last result carries no metric on
    purpose (sweeper.trainable); the progress callback warns once when a trial reports no metric.
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"


def _final_status(d: Path, spec: SweepSpec, wall: float | None) -> tuple[str, int, str | None]:
    """(status, errored trials, reason): finished | time_budget (the budget ran out first) |
    interrupted (Ctrl-C / SIGTERM: resume it) | failed (more trials failed than the failure budget)."""
    table = d / "results.csv"
    df = read_table(table) if table.exists() else None
    statuses = df["status"] if df is not None and "status" in df else []
    errors = int(sum(s == "error" for s in statuses))
    ended = int(sum(s in ENDED for s in statuses))
    if spec.max_failed_trials is not None and errors > spec.max_failed_trials:
        last = df[df["status"] == "error"]["error"].dropna()
        why = f"; last: {last.iloc[-1]}" if len(last) else ""
        return "failed", errors, f"{errors} trials failed, more than failure.max_failed_trials={spec.max_failed_trials}{why}"
    if ended >= spec.total_trials or (not interrupt.interrupted() and spec.time_budget_s and wall is not None
                                      and wall >= spec.time_budget_s * 0.98):
        status = "finished" if ended >= spec.total_trials else "time_budget"
        missing = _no_metric_reason(df, spec.metric) if ended else None
        return ("failed", errors, missing) if missing else (status, errors, None)
    return "interrupted", errors, None


def _no_metric_reason(df, metric: str) -> str | None:
    """Why a sweep whose trials ended has no result: none reported `metric` (Optuna learnt nothing)."""
    if metric in df and df[metric].notna().any():
        return None
    counts = ", ".join(f"{n} {s}" for s, n in df["status"].value_counts().items())
    reported = sorted(c for c in df.columns if "/" in c and not c.startswith("param:") and df[c].notna().any())
    what = f"they report {', '.join(reported[:6])}{', ...' if len(reported) > 6 else ''}" if reported else "none reported a metric"
    return f"no trial reported {metric} ({counts}; {what}); check `metric:` in the spec"


def _best(d: Path, spec: SweepSpec) -> dict[str, Any] | None:
    table = d / "results.csv"
    if not table.exists():
        return None
    return summarize(read_table(table), spec.metric, spec.mode)


def print_summary(record: dict[str, Any], spec: SweepSpec, out) -> None:
    from sweeper.aim_log import up_command

    d = sweep_dir(spec)
    counts = ""
    if (d / "results.csv").exists():
        df = read_table(d / "results.csv")
        by = df["status"].value_counts() if "status" in df else {}
        counts = ", ".join(f"{n} {s}" for s, n in by.items())
        lines = top_table(df, spec.metric, spec.mode)
    else:
        lines = []
    print(f"sweep {spec.name} {record['status']} in {record['wall_s']:.0f}s ({counts or 'no trials'})", file=out)
    if record.get("reason"):
        print(f"reason: {record['reason']}", file=out)
    best = record.get("best")
    if lines:
        print(f"top configurations by {spec.metric} ({spec.mode}), mean +/- std over seeds:", file=out)
        for line in lines:
            print(f"  {line}", file=out)
    if best:
        print(f"best: {best['config_id']} ({spec.metric} {best['mean']:.4f} over {best['seeds']} seed(s))", file=out)
    if record["status"] == "interrupted":
        print(f"resume with: python -m sweeper resume {spec.name}"
              + (f" --storage {spec.storage}" if spec.storage != Path("runs/sweeps").resolve() else ""), file=out)
    print(f"results: {d / 'results.csv'} (and results.parquet)", file=out)
    print(f"Aim UI:  {up_command(spec.aim_repo)}", file=out)
