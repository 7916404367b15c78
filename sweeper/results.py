"""The results table (one row per trial) and the per-configuration summary (mean over seeds).

Written atomically into the sweep directory as `results.csv` and `results.parquet` after every
finished trial and at the end, so the table is complete even when a sweep is interrupted.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from trm_core.errors import write_text_atomic

STATUS = {"TERMINATED": "done", "ERROR": "error", "RUNNING": "running", "PENDING": "pending", "PAUSED": "paused"}


def trial_row(trial, info: dict[str, Any], metric: str, times: dict[str, Any], aim_hash: str | None) -> dict[str, Any]:
    last = trial.last_result or {}
    steps_target = info["cfg"].train.steps
    status = STATUS.get(str(trial.status), str(trial.status).lower())
    step = last.get("step")
    if status == "done" and step is not None and step < steps_target:
        status = "stopped_early"  # ASHA (or the time budget) ended it before train.steps
    row: dict[str, Any] = {
        "trial_id": trial.trial_id, "config_id": info["config_id"], "seed": info["seed"], "status": status,
        "step": step, "steps_target": steps_target, metric: last.get(metric),
        "started_at": times.get("started_at"), "ended_at": times.get("ended_at"),
        "retries": times.get("retries", 0), "aim_run": aim_hash,
        "error": _first_line(getattr(trial, "error_file", None)) if status == "error" else None,
    }
    row.update({f"param:{k}": v for k, v in info["params"].items()})
    row.update({k: v for k, v in last.items() if "/" in k and not k.startswith("config/") and k != metric
                and isinstance(v, (int, float, str, bool))})
    return row


def _first_line(error_file: str | None) -> str | None:
    if not error_file or not os.path.exists(error_file):
        return None
    lines = [l.strip() for l in Path(error_file).read_text(errors="replace").splitlines() if l.strip()]
    return lines[-1][:300] if lines else None


def build_table(trials, trial_info: Callable, metric: str, times: dict, hashes: dict) -> pd.DataFrame:
    rows = [trial_row(t, trial_info(t.config), metric, times.get(t.trial_id, {}), hashes.get(t.trial_id)) for t in trials]
    return pd.DataFrame(rows)


def write_atomic(df: pd.DataFrame, sweep_dir: Path) -> None:
    """results.csv and results.parquet, each written to a temp file then renamed over the old one."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    for name, write in (("results.csv", lambda p: df.to_csv(p, index=False)),
                        ("results.parquet", lambda p: _to_parquet(df, p))):
        tmp = sweep_dir / f".{name}.tmp{os.getpid()}"
        write(tmp)
        os.replace(tmp, sweep_dir / name)


def _to_parquet(df: pd.DataFrame, path: Path) -> None:
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
    ok = df[df["status"].isin(["done", "stopped_early"]) & df[metric].notna()]
    if ok.empty:
        return None
    params = [c for c in df.columns if c.startswith("param:")]
    groups = ok.groupby("config_id")[metric].agg(["mean", "std", "count"]).reset_index()
    groups = groups.sort_values("mean", ascending=(mode == "min"))
    best = groups.iloc[0]
    first = ok[ok["config_id"] == best["config_id"]].iloc[0]
    config = {c[len("param:"):]: _plain(first[c]) for c in params if not _isnan(first[c])}
    return {"config_id": best["config_id"], "mean": float(best["mean"]),
            "std": None if _isnan(best["std"]) else float(best["std"]), "seeds": int(best["count"]),
            "config": config, "metric": metric, "mode": mode, "n_configs": int(len(groups))}


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, default=str))
