"""Run (or resume) a validated sweep's search phase: Ray Tune schedules, Optuna searches, Aim records
(the Tune experiment itself: sweeper.run.phase.run_phase). This module keeps the sweep's record
(sweep.json: spec, status, best, the reason of a failure) and prints the summary at the end.

Layout of a sweep directory `{storage}/{name}/`: `sweep.json` (spec, status, best, reason of a
failure), `results.csv` / `results.parquet`, `aim_runs.json` (trial id -> Aim run hash),
`trial_times.json` (start/end per trial), and `tune/`, Ray Tune's experiment directory (trial
folders, checkpoints, searcher state), kept apart because Ray syncs its directory's .json files.

Seeds: the searcher is wrapped in Ray's Repeater, so each sampled configuration runs once per seed
(the seed is chosen by the repeat index) and Optuna is told the mean over seeds (of each objective,
when `metric:` lists several; sweep.json then also holds `metrics` and `modes`, and the summary at
the end ranks on the first and points to the report's Pareto front). With ASHA each
seed-trial is judged on its own at every rung; a seed stopped at a rung contributes its value at
that rung to the mean, which penalises configurations that ASHA finds weak (search_spaces/README.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from trm_core.errors import UserError

from sweeper.aim.repo import up_command
from sweeper.run import interrupt
from sweeper.run.phase import Phase, run_phase
from sweeper.run.preflight import resume_command
from sweeper.run.sweeps import FORMAT, SEARCH, tune_dir
from sweeper.run.table import read_table, summarize, top_table, write_json_atomic
from sweeper.run.trial import ENDED, SweepBase
from sweeper.spec import SweepSpec
from sweeper.spec.optuna_space import make_searcher


def sweep_dir(spec: SweepSpec) -> Path:
    return spec.storage / spec.name


def _start_record(spec: SweepSpec, record: dict[str, Any] | None, address: str | None) -> dict[str, Any]:
    """sweep.json at the start: the spec after --set (what `resume` rebuilds from), status running."""
    record = dict(record or {})
    record.pop("reason", None)
    record.update(format=FORMAT, name=spec.name, spec_file=spec.file, spec=spec.raw, storage=str(spec.storage),
                  aim_repo=str(spec.aim_repo), metric=spec.metric, mode=spec.mode, metrics=list(spec.metrics),
                  modes=list(spec.modes), total_trials=spec.total_trials,
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


def _run(spec: SweepSpec, address: str | None, resume: bool, verbose: bool, out, record: dict[str, Any],
         dashboard: str | None = None) -> dict[str, Any]:
    phase = search_phase(spec, embedded=address is None)
    fitted = run_phase(phase, address=address, resume=resume, verbose=verbose, out=out, dashboard=dashboard)
    table = _read_results(phase.dir)
    status, errors, reason = final_status(table, spec, fitted.wall_s if not resume else None)
    record.update(status=status, wall_s=round(fitted.wall_s, 2), finished_at=time.time(), errors=errors)
    record.pop("reason", None)
    if reason:
        record["reason"] = reason
    record["best"] = summarize(table, spec.metric, spec.mode) if table is not None else None
    record["phases_s"] = fitted.timings
    write_json_atomic(phase.dir / "sweep.json", record)
    print_summary(record, spec, table, out)
    return record


def search_phase(spec: SweepSpec, embedded: bool) -> Phase:
    """The sweep's own trials: Optuna's configurations x the spec's seeds, under ASHA when asked."""
    return Phase(spec=spec, name=SEARCH, dir=sweep_dir(spec), base=SweepBase.from_spec(spec, embedded),
                 trials=spec.total_trials,
                 headline=(f"sweep {spec.name}: {spec.total_trials} trials ({spec.num_samples} configurations x"
                           f" {len(spec.seeds)} seeds)"),
                 new_searcher=lambda: make_searcher(spec), new_scheduler=lambda: make_scheduler(spec),
                 time_budget_s=spec.time_budget_s, max_failed_trials=spec.max_failed_trials)


def make_scheduler(spec: SweepSpec):
    """ASHA on the trainer's `step` (a rung every grace_period x reduction_factor^k steps), or FIFO."""
    if spec.scheduler == "asha":
        return ASHAScheduler(time_attr="step", metric=spec.metric, mode=spec.mode, max_t=spec.max_t,
                             grace_period=spec.grace_period, reduction_factor=spec.reduction_factor)
    return FIFOScheduler()


def _read_results(d: Path) -> pd.DataFrame | None:
    return read_table(d / "results.csv") if (d / "results.csv").exists() else None


def final_status(df: pd.DataFrame | None, spec: SweepSpec, wall: float | None) -> tuple[str, int, str | None]:
    """(status, errored trials, reason): finished | time_budget (the budget ran out first) |
    interrupted (Ctrl-C / SIGTERM: resume it) | failed (more trials failed than the failure budget)."""
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
        missing = next(filter(None, (_no_metric_reason(df, m) for m in spec.metrics)), None) if ended else None
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


def print_summary(record: dict[str, Any], spec: SweepSpec, df: pd.DataFrame | None, out) -> None:
    d = sweep_dir(spec)
    counts = ""
    if df is not None:
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
    if len(spec.metrics) > 1:
        print(f"this sweep has {len(spec.metrics)} objectives ({spec.objectives_text}); the table and best rank by the"
              f" first; the Pareto front over all of them: python -m sweeper report {spec.name}", file=out)
    if record["status"] == "interrupted":
        print(f"resume with: {resume_command(spec.name, spec.storage)}", file=out)
    print(f"results: {d / 'results.csv'} (and results.parquet)", file=out)
    print(f"Aim UI:  {up_command(spec.aim_repo)}", file=out)
