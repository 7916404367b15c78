"""The results table (one row per trial) and the per-configuration summary (mean over seeds).

Its one writer is the results owner (sweeper.run.results.TrialResults), which rewrites it atomically
in the phase's directory as `results.csv` and `results.parquet` after every finished trial and at
the end, so the table is complete even when a sweep is interrupted. Everything else reads it
(`read_table`): the runner's summary, `ls`, replicate and reports. Columns: docs/REPORTS.md.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from trm_core.errors import write_text_atomic

from sweeper.run.trial import DIVERGED_KEY, PREEMPTED_KEY, SCORED, STATUS, TrialSetup

IDENTITY = ["trial_id", "config_id", "seed", "aim_run"]
STATE = ["status", "step", "steps_target", "retries", "started_at", "ended_at", "wall_s", "error"]


def iso(t: float | None) -> str | None:
    """Seconds since the epoch -> ISO-8601 local time with offset, to the second."""
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return None
    return datetime.fromtimestamp(float(t)).astimezone().isoformat(timespec="seconds")


def ended_status(last: dict[str, Any], steps_target: int) -> str:
    """How a trial that Tune ended ran out, from its last result: diverged, stopped_early or done."""
    step = last.get("step")
    if last.get(DIVERGED_KEY):
        return "diverged"
    if step is not None and step < steps_target:
        return "stopped_early"  # ASHA, the time budget or train.target_exact_acc ended it
    return "done"


def trial_status(trial, steps_target: int, times: dict[str, Any]) -> str:
    last = trial.last_result or {}
    status = STATUS.get(str(trial.status), str(trial.status).lower())
    if status != "done":
        return status
    if times.get("interrupted") and "ended_at" not in times and not last.get(DIVERGED_KEY):
        return "interrupted"  # stopped by Ctrl-C / SIGTERM: `sweeper resume` runs it on
    return ended_status(last, steps_target)


def trial_row(trial, setup: TrialSetup, metric: str | Sequence[str], times: dict[str, Any],
              aim_hash: str | None) -> dict[str, Any]:
    """One row of results.csv, columns in the documented order: identity, state, parameters, metrics
    (the spec's objectives first, in the spec's order; `metric` is one key or the list of them)."""
    last = trial.last_result or {}
    steps_target = setup.steps
    status = trial_status(trial, steps_target, times)
    started, ended = times.get("started_at"), times.get("ended_at")
    error = None
    if status == "diverged":
        error = str(last[DIVERGED_KEY])
    elif status == "error":
        error = _first_line(getattr(trial, "error_file", None))
    row: dict[str, Any] = {
        "trial_id": trial.trial_id, "config_id": setup.config_id, "seed": setup.seed, "aim_run": aim_hash,
        "status": status, "step": last.get("step"), "steps_target": steps_target, "retries": times.get("retries", 0),
        "started_at": iso(started), "ended_at": iso(ended),
        "wall_s": round(ended - started, 2) if started is not None and ended is not None else None, "error": error,
    }
    row.update({f"param:{k}": v for k, v in setup.params.items()})
    objectives = [metric] if isinstance(metric, str) else list(metric)
    row.update({m: last.get(m) for m in objectives})
    metrics = {k: v for k, v in last.items() if "/" in k and not k.startswith("config/") and k not in objectives
               and k not in (DIVERGED_KEY, PREEMPTED_KEY) and isinstance(v, (int, float, str, bool))}
    row.update(dict(sorted(metrics.items())))
    return row


def _first_line(error_file: str | None) -> str | None:
    """The last non-empty line of Tune's error file: the exception and its message."""
    if not error_file or not os.path.exists(error_file):
        return None
    lines = [l.strip() for l in Path(error_file).read_text(errors="replace").splitlines() if l.strip()]
    return lines[-1][:300] if lines else None


def read_table(path: Path) -> pd.DataFrame:
    """results.csv with its id columns as text (an all-digit trial id must not become a number)."""
    return pd.read_csv(path, dtype={"trial_id": str, "config_id": str, "aim_run": str})


def write_atomic(df: pd.DataFrame, sweep_dir: Path) -> None:
    """results.csv and results.parquet, each written to a temp file then renamed over the old one."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    for name, write in (("results.csv", lambda p: df.to_csv(p, index=False)),
                        ("results.parquet", lambda p: to_parquet(df, p))):
        tmp = sweep_dir / f".{name}.tmp{os.getpid()}"
        try:
            write(tmp)
            os.replace(tmp, sweep_dir / name)
        finally:
            tmp.unlink(missing_ok=True)


def to_parquet(df: pd.DataFrame, path: Path) -> None:
    # Mixed-type columns (a categorical of str and int, error text) must not break the writer.
    safe = df.copy()
    for col in safe.columns:
        if safe[col].dtype == object:
            safe[col] = safe[col].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    safe.to_parquet(path, index=False)


def summarize(df: pd.DataFrame, metric: str, mode: str) -> dict[str, Any] | None:
    """Best configuration by the mean of `metric` over its seeds (finished or stopped trials only)."""
    if df.empty or metric not in df:
        return None
    ok = df[df["status"].isin(SCORED) & df[metric].notna()]
    if ok.empty:
        return None
    params = [c for c in df.columns if c.startswith("param:")]
    groups = ok.groupby("config_id")[metric].agg(["mean", "std", "count"]).reset_index()
    groups = groups.sort_values("mean", ascending=(mode == "min"), kind="stable")
    best = groups.iloc[0]
    first = ok[ok["config_id"] == best["config_id"]].iloc[0]
    config = {c[len("param:"):]: _plain(first[c]) for c in params if not _isnan(first[c])}
    return {"config_id": best["config_id"], "mean": float(best["mean"]),
            "std": None if _isnan(best["std"]) else float(best["std"]), "seeds": int(best["count"]),
            "config": config, "metric": metric, "mode": mode, "n_configs": int(len(groups))}


def rank_configs(df: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """One row per configuration (scored trials only), best first: mean, std, seeds, steps, time, params."""
    ok = df[df["status"].isin(SCORED) & df[metric].notna()] if metric in df else df.iloc[0:0]
    if ok.empty:
        return pd.DataFrame()
    wall = ok["wall_s"] if "wall_s" in ok else pd.Series(math.nan, index=ok.index)
    agg = ok.assign(_wall=wall).groupby("config_id").agg(
        mean=(metric, "mean"), std=(metric, "std"), seeds=(metric, "count"), steps=("step", "max"), wall_s=("_wall", "mean"))
    params = [c for c in df.columns if c.startswith("param:")]
    firsts = ok.groupby("config_id")[params].first() if params else pd.DataFrame(index=agg.index)
    table = agg.join(firsts).sort_values("mean", ascending=(mode == "min"), kind="stable")
    return table.reset_index()


def fmt(v: Any) -> str:
    """A value as a person reads it: floats to 4 significant digits (files keep full precision)."""
    if _isnan(v):
        return "-"
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        return f"{float(v):.4g}"
    return str(_plain(v))


def top_table(df: pd.DataFrame, metric: str, mode: str, n: int = 5) -> list[str]:
    """The end-of-sweep table: the top `n` configurations, mean +/- std over seeds, seeds, steps, time."""
    ranked = rank_configs(df, metric, mode)
    if ranked.empty:
        return []
    params = [c for c in ranked.columns if c.startswith("param:")]
    head = ["", "config", f"{metric} (mean +/- std)", "seeds", "steps", "time"] + [c[len("param:"):] for c in params]
    rows = [head]
    for i, r in ranked.head(n).iterrows():
        spread = f" +/- {r['std']:.4f}" if not _isnan(r["std"]) else ""
        time_s = f"{r['wall_s']:.0f}s" if not _isnan(r["wall_s"]) else "-"
        rows.append(["*" if i == 0 else "", r["config_id"], f"{r['mean']:.4f}{spread}", str(int(r["seeds"])),
                     fmt(r["steps"]) if _isnan(r["steps"]) else str(int(r["steps"])), time_s] + [fmt(r[c]) for c in params])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    if len(ranked) > n:
        lines.append(f"  ({len(ranked) - n} more configurations in results.csv)")
    return lines


def _isnan(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):  # a list or an array is a value
        return False


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, default=str))
