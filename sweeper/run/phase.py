"""One Ray Tune experiment of a sweep, from Ray's start to its stop: the search (sweeper.run.runner)
and every replicate phase (sweeper.run.replicate) run through `run_phase`, the only place a Tuner is
built, restored and fitted.

While Ray starts (mostly waiting for its processes), the Aim repo is prepared (an import and, for a
new repo, a migration subprocess) and, on the embedded Ray, the base dataset is built once so that
parallel trials find it cached. Two callbacks watch the trials on the driver: the Aim callback (one
run per trial) and the results owner (results.csv, trial_times.json, the progress line, the failure
budget). Ctrl-C or SIGTERM stops the trials through Tune (sweeper.run.interrupt). When the trials
are done, the phase's Aim runs are indexed while Ray stops.

A phase directory holds our files beside Ray Tune's experiment directory `tune/` (sweeper.run.sweeps).
"""

from __future__ import annotations

import os
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ray import tune
from ray.tune.schedulers import FIFOScheduler

from trm_core.config import from_dict
from trm_core.data.store import build_from_config

from sweeper.aim.callback import AimCallback
from sweeper.aim.repo import ensure_repo_or_warn, hashes_in, reindex_or_warn
from sweeper.run import cluster, interrupt
from sweeper.run.progress import ProgressLine
from sweeper.run.results import FailureBudget, TrialResults
from sweeper.run.sweeps import SEARCH, TUNE_SUBDIR, tune_dir
from sweeper.run.trainable import run_trial
from sweeper.run.trial import TIMES_FILE, SweepBase, trial_folder
from sweeper.spec import SweepSpec
from sweeper.spec.optuna_space import quiet_optuna
from sweeper.spec.resources import concurrency, describe_nodes


@dataclass
class Phase:
    """What one Tune experiment of a sweep runs, and where."""

    spec: SweepSpec
    name: str
    """`search`, or `replicate_N`: the phase Aim's runs are tagged with."""
    dir: Path
    base: SweepBase
    trials: int
    """How many trials Tune runs (the searcher's samples; the Repeater's repeats count one each)."""
    headline: str
    """The phase's first line, before `, N at a time on <nodes>`."""
    new_searcher: Callable[[], Any]
    """The searcher of a new phase; a resumed phase restores its own."""
    new_scheduler: Callable[[], Any] = FIFOScheduler
    time_budget_s: float | None = None
    max_failed_trials: int | None = None

    @property
    def label(self) -> str:
        """The progress line's name: the sweep's, and the phase's outside the search."""
        return self.spec.name if self.name == SEARCH else f"{self.spec.name}/{self.name}"


@dataclass
class Fitted:
    wall_s: float
    """From the Tuner's construction to the end of its fit."""
    timings: dict[str, float]
    """Seconds per step of the driver (sweep.json `phases_s`; benchmarks/bench_sweep_overhead.py)."""


class _Timings(dict):
    def __init__(self):
        super().__init__()
        self._t = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self[name] = round(now - self._t, 2)
        self._t = now


def run_phase(phase: Phase, *, address: str | None, resume: bool, verbose: bool, out,
              dashboard: str | None = None, on_start: Callable[[], None] | None = None) -> Fitted:
    """Start (or join) Ray, run the phase's trials to their end (or resume them), stop Ray.

    `on_start` runs once Ray holds the phase, before its first trial (replicate writes phase.json).
    Errors propagate; Ray is stopped on the way out when this call started it.
    """
    timings = _Timings()
    spec = phase.spec
    quiet_optuna()
    _quiet_tune()
    timings.done("setup")
    with ThreadPoolExecutor(1) as pool:
        aim_ready = pool.submit(ensure_repo_or_warn, spec.aim_repo, spec.name)
        data_ready = pool.submit(_prebuild_data, phase.base, out) if address is None else None
        started, nodes = cluster.connect(spec, address, verbose, dashboard)
        try:
            aim_ok = aim_ready.result()
            if data_ready is not None:
                data_ready.result()
        except BaseException:
            if started:
                cluster.shutdown()
            raise
    timings.done("ray_aim_data")
    interrupt.install(verbose)
    try:
        if on_start is not None:
            on_start()
        print(f"{phase.headline}, {concurrency(spec, nodes, phase.trials)} at a time on {describe_nodes(nodes)}",
              file=out)
        t0 = time.time()
        tuner = restore_tuner(phase) if resume else build_tuner(phase)
        timings.done("tuner")
        try:
            tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl-C skips Tune's clean stop
            interrupt.INTERRUPTED.set()
        wall = time.time() - t0
        timings.done("fit")
    finally:
        interrupt.uninstall()
        with ThreadPoolExecutor(1) as pool:  # index the Aim repo while Ray stops
            if aim_ok:
                pool.submit(reindex_or_warn, spec.aim_repo, hashes_in(phase.dir / "aim_runs.json"))
            if started:
                cluster.shutdown()
    set_aside_partial_checkpoints(phase.dir, out)
    timings.done("ray_stop_aim_index")
    return Fitted(wall_s=wall, timings=dict(timings))


def set_aside_partial_checkpoints(phase_dir: Path, out) -> list[Path]:
    """Tune copies each reported checkpoint into the sweep's storage file by file: a copy cut short (a
    full disk, a worker killed while copying) stays as `trial_*/checkpoint_N`, which Tune never
    registered. Each such one is renamed `partial_checkpoint_N`, so nothing takes it for a checkpoint.
    Whole means: checkpoint.pt is there and its zip directory (written last, at the file's end) reads."""
    moved = []
    for ckpt in sorted(tune_dir(phase_dir).glob("trial_*/checkpoint_*")):
        try:
            with zipfile.ZipFile(ckpt / "checkpoint.pt") as z:
                z.infolist()
        except (OSError, zipfile.BadZipFile):
            target = ckpt.with_name("partial_" + ckpt.name)
            try:
                ckpt.rename(target)
                moved.append(target)
            except OSError:
                continue
    if moved:
        print(f"set aside {len(moved)} checkpoint copies cut short: {', '.join(str(m) for m in moved[:3])}"
              + (" ..." if len(moved) > 3 else ""), file=out)
    return moved


def trial_dirname(trial) -> str:
    """A trial's folder under tune/ (sweeper.report.data finds result.json and params.json there)."""
    return trial_folder(trial.trial_id)


def trainable(phase: Phase):
    """The trial function with what every trial shares, and the resources each one holds."""
    return tune.with_resources(tune.with_parameters(run_trial, base=phase.base, trials_dir=str(tune_dir(phase.dir)),
                                                    times_file=str(phase.dir / TIMES_FILE)),
                               {"cpu": phase.spec.cpu, "gpu": phase.spec.gpu})


def build_tuner(phase: Phase) -> tune.Tuner:
    spec = phase.spec
    results = TrialResults(phase.dir, phase.base, ProgressLine(phase.label, spec.metric, spec.mode, phase.trials),
                           phase.max_failed_trials)
    aim = AimCallback(str(spec.aim_repo), spec.aim_experiment, spec.name, phase.name, results,
                      str(phase.dir / "aim_runs.json"))
    tune_config = tune.TuneConfig(search_alg=phase.new_searcher(), scheduler=phase.new_scheduler(),
                                  num_samples=phase.trials, max_concurrent_trials=spec.max_concurrent,
                                  time_budget_s=phase.time_budget_s, reuse_actors=True,
                                  trial_dirname_creator=trial_dirname)
    run_config = tune.RunConfig(
        name=TUNE_SUBDIR, storage_path=str(phase.dir), callbacks=[aim, results], verbose=0,
        stop=FailureBudget(results) if phase.max_failed_trials is not None else None,
        failure_config=tune.FailureConfig(max_failures=spec.max_retries),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )
    return tune.Tuner(trainable(phase), tune_config=tune_config, run_config=run_config)


def restore_tuner(phase: Phase) -> tune.Tuner:
    """The phase's Tuner as Tune saved it (searcher state, callbacks, trials); unfinished and errored
    trials run again from their last checkpoint. State of an earlier layout of the sweeper is refused
    before this (sweeper.run.sweeps.check_restorable)."""
    return tune.Tuner.restore(str(tune_dir(phase.dir)), trainable=trainable(phase), resume_unfinished=True,
                              resume_errored=True)


def _prebuild_data(base: SweepBase, out) -> None:
    """Build the base dataset once on the driver, so parallel trials find it cached."""
    t0 = time.time()
    path = build_from_config(from_dict(base.base).data)
    print(f"dataset: {path} ({time.time() - t0:.1f}s)", file=out)


def _quiet_tune() -> None:
    """Our progress line replaces Tune's tables; its checkpoint-sync warning fires on every small trial.

    Tune's strict metric check is off because a diverged trial's last result carries no metric on
    purpose (sweeper.run.trainable); the results owner warns once when a trial reports no metric.
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
