"""Synthetic sweep directories with known numbers, laid out as the sweeper leaves them
(sweep.json, results.csv, trial_<id>/result.json and params.json), for the report tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

METRIC = "eval/exact_acc"
A_VALUES = [0.90, 0.92, 0.94, 0.96]  # mean 0.93, sample std sqrt(0.002 / 3) = 0.0258199
STEPS = 100


def trial(tid: str, cfg: str, seed: int, status: str, value: float | None, params: dict[str, Any],
          step: int = STEPS, error: str | None = None, **metrics: float) -> dict[str, Any]:
    return {"trial_id": tid, "config_id": cfg, "seed": seed, "status": status, "step": step, "steps_target": STEPS,
            METRIC: value, "started_at": 1_000.0, "ended_at": 1_000.0 + 10 * (seed + 1), "retries": 0,
            "aim_run": None, "error": error, **{f"param:{k}": v for k, v in params.items()}, **metrics}


def write_sweep(root: Path, name: str, rows: list[dict[str, Any]], *, status: str = "finished",
                pid: int | None = None, phase_dir: str | None = None, mode: str = "max") -> Path:
    """A sweep directory (or, with phase_dir, a replicate phase inside an existing one)."""
    d = root / name
    target = d / phase_dir if phase_dir else d
    target.mkdir(parents=True, exist_ok=True)
    if not phase_dir:
        record = {"name": name, "status": status, "pid": pid or os.getpid(), "metric": METRIC, "mode": mode,
                  "total_trials": len(rows), "aim_repo": str(root / "no-aim"),
                  "spec": {"name": name, "resources": {"cpu": 2, "gpu": 0}, "aim": {"experiment": name}}}
        (d / "sweep.json").write_text(json.dumps(record))
    pd.DataFrame(rows).to_csv(target / "results.csv", index=False)
    for r in rows:
        tdir = target / f"trial_{r['trial_id']}"
        tdir.mkdir(exist_ok=True)
        params = {k[len("param:"):]: v for k, v in r.items() if k.startswith("param:")}
        (tdir / "params.json").write_text(json.dumps({**params, "__trial_index__": r["seed"]}))
        final = r[METRIC] if r[METRIC] is not None else float("nan")
        lines = [{"step": s, METRIC: final * s / r["step"], "train/loss": 1.0 / s, "config": params}
                 for s in range(10, (r["step"] or 0) + 1, 10)]
        (tdir / "result.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return d


def tricky_rows() -> list[dict[str, Any]]:
    """Every awkward case of the issue in one sweep, with known numbers."""
    a = {"optim.lr": 1e-3, "optim.name": "adamw", "optim.weight_decay": 0.1}
    b = {"optim.lr": 2e-3, "optim.name": "adam_atan2"}  # conditional weight_decay not sampled
    c = {"optim.lr": 3e-3, "optim.name": "adam_atan2"}
    d = {"optim.lr": 1e-3, "optim.name": "adamw", "optim.weight_decay": 0.3}
    rules = lambda i: {"eval_tts/halt_first/exact_acc": 0.95 + 0.01 * i, "eval_tts/majority/exact_acc": 0.5,
                       "eval/halt_first/exact_acc": 0.9, "train/win_rate/0": 0.25 * i, "train/win_rate/1": 1 - 0.25 * i}
    rows = [trial(f"a{i}", "cfg-aaaa", i, "done", v, a, **rules(i)) for i, v in enumerate(A_VALUES)]
    rows += [trial("b0", "cfg-bbbb", 0, "done", 0.5, b), trial("b1", "cfg-bbbb", 1, "done", 0.7, b),
             trial("b2", "cfg-bbbb", 2, "stopped_early", 0.99, b, step=30),
             trial("b3", "cfg-bbbb", 3, "error", None, b, step=50, error="UserError: training diverged at step 50: loss is nan")]
    rows += [trial("c0", "cfg-cccc", 0, "done", 0.8, c)]
    rows += [trial("d0", "cfg-dddd", 0, "done", float("nan"), d),
             trial("d1", "cfg-dddd", 1, "error", None, d, step=20, error="RuntimeError: boom"),
             trial("d2", "cfg-dddd", 2, "running", 0.3, d, step=40),
             trial("d3", "cfg-dddd", 3, "done", None, d, step=None)]  # ended (Ctrl-C) before its first report
    return rows
