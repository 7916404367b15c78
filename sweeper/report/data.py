"""A sweep's results as report inputs: every phase's trials, their outcome, group and cost, and
the step-level curves. Schema of what a report exports: docs/REPORTS.md.

Phases: `search` is the sweep itself (`STORAGE/NAME/results.csv`); `replicate_1`, `replicate_2`, ...
are the replicate phases (`STORAGE/NAME/replicate_K/results.csv`, sweeper/run/replicate.py).

Outcome of a trial, for the report's metric (only `final` trials enter the statistics):
  final          trained to train.steps (status done) with a finite metric value
  stopped_early  ended before train.steps (ASHA, a time budget): its value is not a final value
  error          the trial failed (its first error line is listed)
  diverged       the trainer stopped on a non-finite loss, or the metric is +/-inf
  nan_metric     finished, but the metric is NaN or was not reported
  unfinished     still running, pending, paused or interrupted (or ended before its first report)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trm_core.errors import UserError, did_you_mean

from sweeper.run.sweeps import find_sweep, phase_dirs, read_phase, read_record, tune_dir
from sweeper.run.trial import trial_folder

FINAL, STOPPED, ERROR, DIVERGED, NAN_METRIC, UNFINISHED = (
    "final", "stopped_early", "error", "diverged", "nan_metric", "unfinished")
PARAM = "param:"
ID_COLUMNS = {"trial_id": str, "config_id": str, "aim_run": str}
NFE_KEY, ACT_STEPS_KEY, SPEED_KEY = "eval/avg_nfe", "eval/avg_steps", "perf/puzzle_steps_per_s"


@dataclass
class Sweep:
    """One sweep directory, all of its phases loaded."""

    name: str
    dir: Path
    record: dict[str, Any]
    metric: str
    mode: str
    trials: pd.DataFrame
    phases: list[str] = field(default_factory=list)
    running: bool = False  # its driver (search or a replicate phase) is alive
    objectives: list[str] = field(default_factory=list)
    """The sweep's objectives (sweep.json `metrics`), the first being the one it searched first; [metric]
    for a sweep with one. Several: the report adds a Pareto front over them (sweeper/report/pareto.py)."""
    modes: list[str] = field(default_factory=list)
    """max | min per objective (sweep.json `modes`)."""

    def __post_init__(self) -> None:
        self.objectives = list(self.objectives) or [self.metric]
        self.modes = list(self.modes) or [self.mode]

    @property
    def device(self) -> str:
        """What a trial reserves: 'GPU' when it asks for a GPU share, else 'CPU'."""
        return "GPU" if self.resources()[1] > 0 else "CPU"

    def resources(self) -> tuple[float, float]:
        res = (self.record.get("spec") or {}).get("resources") or {}
        return float(res.get("cpu", 1) or 1), float(res.get("gpu", 0) or 0)

    @property
    def params(self) -> list[str]:
        return [c for c in self.trials.columns if c.startswith(PARAM)]

    def metric_columns(self) -> list[str]:
        """Numeric metric columns (namespaced keys such as eval/exact_acc, eval_tts/<rule>/exact_acc)."""
        return [c for c in self.trials.columns if "/" in c and not c.startswith(PARAM)
                and pd.api.types.is_numeric_dtype(self.trials[c])]


def load(name_or_path: str, storage: str | None = None, metric: str | None = None) -> Sweep:
    d = find_sweep(name_or_path, storage)
    record = read_record(d) or {}
    frames = []
    for phase, phase_dir in phase_dirs(d):
        table = phase_dir / "results.csv"
        if table.exists():
            df = pd.read_csv(table, dtype=ID_COLUMNS)  # a trial id may be all digits ('01234567')
            df.insert(0, "phase", phase)
            df["trial_dir"] = [str(tune_dir(phase_dir) / trial_folder(t)) for t in df["trial_id"]]
            frames.append(df)
    trials = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["phase", "trial_id", "config_id", "seed", "status", "step", "trial_dir"])
    metric = metric or record.get("metric") or "eval/exact_acc"
    if frames and metric not in trials:
        known = [c for c in trials.columns if "/" in c and not c.startswith(PARAM)]
        raise UserError(f"--metric {metric}: sweep {d.name} has no such column{did_you_mean(metric, known)};"
                        f" its metrics: {', '.join(known) or 'none yet'}")
    running = record.get("status") == "running" or any(
        (read_phase(p) or {}).get("status") == "running" for _, p in phase_dirs(d)[1:])
    objectives, modes = record_objectives(record)
    objectives, modes = record.get("metrics") or [], record.get("modes") or []
    mode = modes[objectives.index(metric)] if metric in objectives and len(modes) == len(objectives) else record.get("mode", "max")
    sweep = Sweep(name=d.name, dir=d, record=record, metric=metric, mode=mode,
                  trials=trials, phases=[p for p, _ in phase_dirs(d)], running=running, objectives=objectives,
                  modes=modes)
    prepare(sweep)
    return sweep


def record_objectives(record: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(objectives, modes) of a sweep.json: `metrics`/`modes` (several objectives), else its metric and
    mode; ([], []) when it names neither, or lists that do not pair up."""
    metrics, modes = record.get("metrics"), record.get("modes")
    if isinstance(metrics, list) and isinstance(modes, list) and metrics and len(metrics) == len(modes):
        return [str(m) for m in metrics], [str(m) for m in modes]
    if record.get("metric"):
        return [str(record["metric"])], [str(record.get("mode", "max"))]
    return [], []


def prepare(sweep: Sweep) -> None:
    """Add outcome, group and cost columns (in place); also used on synthetic tables in tests."""
    df = sweep.trials
    for col in ("status", "error", "seed", "step"):
        if col not in df:
            df[col] = np.nan
    for col in dict.fromkeys([sweep.metric, *sweep.objectives]):
        if col not in df:
            df[col] = np.nan
    df["outcome"] = outcomes(df, sweep.metric)
    df["group"] = groups(df)
    df["wall_s"] = _seconds(df, "ended_at") - _seconds(df, "started_at")
    cpu, gpu = sweep.resources()
    df["device_s"] = df["wall_s"] * (gpu if gpu > 0 else cpu)


def outcomes(df: pd.DataFrame, metric: str) -> pd.Series:
    value = pd.to_numeric(df[metric], errors="coerce")
    status = df["status"].astype(str)
    diverged_error = df["error"].astype(str).str.contains("diverged", case=False, na=False)
    never_reported = pd.to_numeric(df["step"], errors="coerce").isna()  # e.g. ended by Ctrl-C before a report
    conditions = [
        status == "diverged",  # the trainer stopped it (sweeper.run.trainable): its reason is in `error`
        (status == "error") & diverged_error,
        status == "error",
        status == "stopped_early",
        (status == "done") & never_reported,
        (status == "done") & value.isna(),
        (status == "done") & ~np.isfinite(value.fillna(0.0)),
        status == "done",
    ]
    return pd.Series(np.select(conditions, [DIVERGED, DIVERGED, ERROR, STOPPED, UNFINISHED, NAN_METRIC, DIVERGED, FINAL],
                               UNFINISHED),
                     index=df.index)


def plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def param_key(row: pd.Series, params: list[str]) -> str:
    """The configuration's identity: its parameters (seed excluded), absent ones left out, so a
    conditional parameter that was not sampled groups with its equals (pandas' groupby would drop
    NaN keys)."""
    present = {c[len(PARAM):]: plain(row[c]) for c in params if not is_missing(plain(row[c]))}
    return json.dumps(present, sort_keys=True, default=str)


def groups(df: pd.DataFrame) -> pd.Series:
    """One label per configuration: the sweep's config_id when it has one, else a hash of the parameters."""
    params = sorted(c for c in df.columns if c.startswith(PARAM))
    keys = df.apply(lambda row: param_key(row, params), axis=1) if len(df) else pd.Series([], dtype=object)
    labels: dict[str, str] = {}
    for key, cid in zip(keys, df["config_id"] if "config_id" in df else [None] * len(df)):
        if key not in labels or (labels[key].startswith("cfg?") and isinstance(cid, str)):
            labels[key] = cid if isinstance(cid, str) else "cfg?" + hashlib.sha1(key.encode()).hexdigest()[:8]
    return pd.Series([labels[k] for k in keys], index=df.index, dtype=object)


def group_params(sweep: Sweep) -> dict[str, dict[str, Any]]:
    """group -> {param: value} (parameters the configuration did not sample are absent)."""
    out: dict[str, dict[str, Any]] = {}
    for _, row in sweep.trials.drop_duplicates("group").iterrows():
        out[row["group"]] = {c[len(PARAM):]: plain(row[c]) for c in sweep.params if not is_missing(plain(row[c]))}
    return out


def varying(params: dict[str, dict[str, Any]], groups: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Parameters that differ among `groups` (shown as columns) and those that do not (one line)."""
    keys = sorted({k for g in groups for k in params.get(g, {})})
    vary, const = [], {}
    for k in keys:
        values = {repr(params.get(g, {}).get(k, None)) for g in groups}
        if len(values) > 1:
            vary.append(k)
        else:
            const[k] = params[groups[0]].get(k)
    return vary, const


def _seconds(df: pd.DataFrame, name: str) -> pd.Series:
    """Epoch seconds from a column of epoch floats or ISO-8601 strings (NaN where absent)."""
    if name not in df:
        return pd.Series(np.nan, index=df.index, dtype=float)
    col = df[name]
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().sum() >= col.notna().sum():
        return numeric.astype(float)
    parsed = pd.to_datetime(col, errors="coerce", utc=True, format="ISO8601")
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def load_steps(sweep: Sweep) -> pd.DataFrame:
    """Every report a trial made (Ray's trial_*/result.json, one JSON line per evaluation): step and
    the numeric metrics, with the trial's identity; one row per (trial, step). A trial still writing
    may end in a partial line, which is skipped."""
    rows = []
    keep = ["phase", "trial_id", "group", "seed", "outcome"]
    for _, trial in sweep.trials.iterrows():
        path = Path(str(trial["trial_dir"])) / "result.json"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                result = json.loads(line)
            except ValueError:
                continue
            metrics = {k: v for k, v in result.items() if ("/" in k and not k.startswith("config/")
                       and isinstance(v, (int, float)) and not isinstance(v, bool))}
            rows.append({**{k: trial[k] for k in keep}, "step": result.get("step"), **metrics})
    steps = pd.DataFrame(rows, columns=None if rows else keep + ["step"])
    # a trial restarted without a checkpoint reports its first steps again: the last report wins
    return steps.drop_duplicates(["phase", "trial_id", "step"], keep="last", ignore_index=True)
