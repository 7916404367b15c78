"""Sweep overhead: an N-trial sweep (Ray Tune + Optuna + Aim) versus the same trials in a plain loop.

    python benchmarks/bench_sweep.py --trials 4 --steps 60            # small scale (CPU)
    python benchmarks/bench_sweep.py --trials 8 --steps 400 --concurrency 2

The trials are one configuration of the `sudoku4_tiny` preset with seeds 0..N-1 (so both sides
train exactly the same runs). The loop calls `trm_core` training in this process, one trial after
the other, with the same threads per trial; the sweep runs them through `sweeper.runner.run_sweep`
with an embedded Ray (started and stopped inside the timed region) and `--concurrency` trials at
a time. Printed: wall times, the overhead ratio sweep / (loop / concurrency) - 1, the sweep's
time outside trials (wall minus trial time: Ray start, scheduling, Aim, teardown) and the start-up
time from calling the sweep to the first trial running. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


def tiny_overrides(steps: int) -> dict:
    return {"train.steps": steps, "train.eval_interval": max(steps // 2, 1), "train.log_interval": max(steps // 4, 1),
            "train.batch_size": 32, "model.hidden_size": 32, "data.n_train": 500, "data.n_test": 100,
            "optim.warmup_steps": 5, "device": "cpu"}


def run_loop(n: int, steps: int, threads: int) -> tuple[float, list[float]]:
    import torch

    from trm_core.config import load_config, set_value
    from trm_core.train.loop import train

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    per_trial = []
    t0 = time.perf_counter()
    for seed in range(n):
        cfg = load_config("sudoku4_tiny")
        for k, v in tiny_overrides(steps).items():
            set_value(cfg, k, v)
        cfg.seed = seed
        t = time.perf_counter()
        train(cfg)
        per_trial.append(time.perf_counter() - t)
    return time.perf_counter() - t0, per_trial


def run_sweep_once(n: int, steps: int, concurrency: int, cpu: float, workdir: Path) -> dict:
    from sweeper.runner import run_sweep
    from sweeper.spec import validate

    raw = {
        "name": "bench", "base": {"preset": "sudoku4_tiny", "overrides": tiny_overrides(steps)},
        "metric": "eval/exact_acc", "mode": "max",
        "space": {"optim.lr": {"type": "categorical", "choices": [1e-3]}},
        "search": {"sampler": "random", "num_samples": 1, "max_concurrent": concurrency},
        "scheduler": "none", "seeds": list(range(n)), "resources": {"cpu": cpu, "gpu": 0},
        "storage": str(workdir / "sweeps"), "aim": {"repo": str(workdir / "aim")},
    }
    spec = validate("bench", raw, cwd=workdir)
    t0 = time.time()
    record = run_sweep(spec, out=io.StringIO())
    wall = time.time() - t0
    d = workdir / "sweeps" / "bench"
    times = json.loads((d / "trial_times.json").read_text())
    first_start = min(t["started_at"] for t in times.values())
    import pandas as pd

    table = pd.read_csv(d / "results.csv")
    return {"wall_s": wall, "first_trial_s": first_start - t0, "status": record["status"],
            "done": int((table["status"] == "done").sum()), "trial_s": [t["ended_at"] - t["started_at"] for t in times.values()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--cpu", type=float, default=1.0, help="CPUs (threads) per trial, both sides")
    args = ap.parse_args()
    os.environ.setdefault("TRM_DATA_CACHE", str(Path(tempfile.gettempdir()) / "trm_bench_cache"))
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        # Warm the dataset cache so neither side pays for generating puzzles.
        from trm_core.config import load_config, set_value
        from trm_core.data.store import build_from_config

        cfg = load_config("sudoku4_tiny")
        for k, v in tiny_overrides(args.steps).items():
            set_value(cfg, k, v)
        build_from_config(cfg.data)
        loop_wall, loop_trials = run_loop(args.trials, args.steps, max(1, int(args.cpu)))
        sweep = run_sweep_once(args.trials, args.steps, args.concurrency, args.cpu, Path(tmp))
    ideal = loop_wall / args.concurrency
    ratio = sweep["wall_s"] / ideal - 1
    mean_trial = sum(loop_trials) / len(loop_trials)
    # Machine load drifts between the two halves on a shared box; this figure does not depend on it:
    # the sweep's wall time not spent inside a trial (Ray start, scheduling gaps, Aim, teardown).
    in_trials = sum(sweep["trial_s"]) / args.concurrency
    fixed = sweep["wall_s"] - in_trials
    rows = [
        ("trials x steps", f"{args.trials} x {args.steps}"),
        ("concurrency (sweep)", str(args.concurrency)),
        ("mean trial, loop (s)", f"{mean_trial:.1f}"),
        ("mean trial, in sweep (s)", f"{sum(sweep['trial_s']) / len(sweep['trial_s']):.1f}"),
        ("loop wall (s)", f"{loop_wall:.1f}"),
        ("sweep wall (s)", f"{sweep['wall_s']:.1f}"),
        ("overhead ratio (sweep / (loop / concurrency) - 1)", f"{ratio:+.1%}"),
        ("sweep time outside trials (s)", f"{fixed:.1f}"),
        ("  as a share of trial time", f"{fixed / in_trials:+.1%}"),
        ("start-up: call -> first trial running (s)", f"{sweep['first_trial_s']:.1f}"),
        ("trials done", f"{sweep['done']}/{args.trials} ({sweep['status']})"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    print(json.dumps({"trials": args.trials, "steps": args.steps, "concurrency": args.concurrency,
                      "loop_wall_s": round(loop_wall, 2), "sweep_wall_s": round(sweep["wall_s"], 2),
                      "overhead_ratio": round(ratio, 4), "outside_trials_s": round(fixed, 2), "startup_s": round(sweep["first_trial_s"], 2)}))


if __name__ == "__main__":
    main()
