"""Sweep overhead on a real sweep: wall time against the trials' own time at the sweep's concurrency.

    python benchmarks/bench_sweep_overhead.py                                   # the quickstart
    python benchmarks/bench_sweep_overhead.py search_spaces/quickstart.yaml --set search.num_samples=4
    python benchmarks/bench_sweep_overhead.py --repeat 3                        # three sweeps, one table

A sweep (embedded Ray, Optuna, Aim: `sweeper.runner.run_sweep`, the same call as `python -m sweeper
run`) is timed from the call to its return. Per trial, from the sweep's own records
(trial_times.json, results.csv): Tune's start and end of the trial, and the trainer's own
`time/elapsed_s` (its training loop, evaluations and checkpoints; not process start, imports, data
loading or model set-up). Printed, per sweep:

- overhead = wall / (sum of trial times / concurrency) - 1, with trial time measured two ways:
  Tune's start-to-end (what the scheduler sees) and the trainer's own elapsed time (what the
  trial would cost with no platform around it; the issue's "trials' own times");
- start-up (call -> first trial started) and tail (last trial ended -> return);
- trial start latency (median): Tune starting a trial -> the trainer's clock starting (worker,
  imports, dataset, model, first compile), from the first result's arrival minus its elapsed time;
- slot gap (median): a trial ending -> the next trial starting in the freed slot.

Not part of the test suite. On a shared machine the figures move with the load: run --repeat 3
and quote the range.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


def one_sweep(spec_file: str, sets: list[str], workdir: Path, name: str) -> dict:
    from sweeper import resources
    from sweeper.results import read_table
    from sweeper.runner import run_sweep
    from sweeper.spec import load_spec

    spec = load_spec(spec_file, [*sets, f"storage={workdir / 'sweeps'}", f"aim.repo={workdir / 'aim'}", f"name={name}"])
    (spec.storage / spec.name).mkdir(parents=True)
    conc = resources.concurrency(spec, [resources.detect_local()])
    t0 = time.time()
    record = run_sweep(spec, out=io.StringIO())
    t_end = time.time()
    d = spec.storage / spec.name
    times = json.loads((d / "trial_times.json").read_text())
    table = read_table(d / "results.csv").set_index("trial_id")
    rows = [(tid, t) for tid, t in times.items() if "started_at" in t and "ended_at" in t]
    tune_s = [t["ended_at"] - t["started_at"] for _, t in rows]
    own_s = [float(table.loc[tid, "time/elapsed_s"]) for tid, _ in rows if tid in table.index]
    latency = [t["first_result_at"] - t["first_elapsed_s"] - t["started_at"] for _, t in rows
               if "first_result_at" in t and "first_elapsed_s" in t]
    starts = sorted(t["started_at"] for _, t in rows)
    ends = sorted(t["ended_at"] for _, t in rows)
    gaps = [s - e for s, e in zip(starts[conc:], ends) if s >= e]  # the i-th end frees the slot of the (i+conc)-th start
    wall = t_end - t0
    per_trial = [{"trial": tid, "start": round(t["started_at"] - t0, 1), "tune_s": round(t["ended_at"] - t["started_at"], 1),
                  "own_s": round(float(table.loc[tid, "time/elapsed_s"]), 1) if tid in table.index else None,
                  "latency_s": round(t["first_result_at"] - t["first_elapsed_s"] - t["started_at"], 2)
                  if "first_result_at" in t else None, "status": table.loc[tid, "status"] if tid in table.index else None,
                  "step": int(table.loc[tid, "step"]) if tid in table.index else None} for tid, t in rows]
    return {"per_trial": per_trial,
        "status": record["status"], "trials": len(rows), "concurrency": conc, "wall_s": wall,
        "tune_sum_s": sum(tune_s), "own_sum_s": sum(own_s),
        "overhead_vs_tune": wall / (sum(tune_s) / conc) - 1, "overhead_vs_own": wall / (sum(own_s) / conc) - 1,
        "startup_s": starts[0] - t0, "tail_s": t_end - ends[-1],
        "start_latency_s": statistics.median(latency) if latency else float("nan"),
        "slot_gap_s": statistics.median(gaps) if gaps else float("nan"),
        "best": (record.get("best") or {}).get("mean"), "phases_s": record.get("phases_s"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default=str(ROOT / "search_spaces" / "quickstart.yaml"))
    ap.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    ap.add_argument("--repeat", type=int, default=1, help="sweeps to run one after the other")
    ap.add_argument("--per-trial", action="store_true", help="also print each trial's times")
    args = ap.parse_args()
    os.environ.setdefault("TRM_DATA_CACHE", str(Path(tempfile.gettempdir()) / "trm_bench_cache"))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        for i in range(args.repeat):
            results.append(one_sweep(args.spec, args.sets, Path(tmp), f"bench{i}"))
    cols = [("status", "{}"), ("trials", "{}"), ("concurrency", "{}"), ("wall_s", "{:.1f}"), ("tune_sum_s", "{:.1f}"),
            ("own_sum_s", "{:.1f}"), ("overhead_vs_tune", "{:+.1%}"), ("overhead_vs_own", "{:+.1%}"),
            ("startup_s", "{:.1f}"), ("tail_s", "{:.1f}"), ("start_latency_s", "{:.2f}"), ("slot_gap_s", "{:.2f}"),
            ("best", "{:.3f}")]
    table = [[k for k, _ in cols]] + [[f.format(r[k]) if r[k] is not None else "-" for k, f in cols] for r in results]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    print(f"spec {args.spec} {' '.join(args.sets)}; load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    for i, r in enumerate(results):
        print(f"sweep {i} driver phases (s): " + ", ".join(f"{k} {v}" for k, v in (r["phases_s"] or {}).items()))
        if args.per_trial:
            for t in sorted(r["per_trial"], key=lambda t: t["start"]):
                print("   ", t)
    for r in results:
        r.pop("per_trial")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
