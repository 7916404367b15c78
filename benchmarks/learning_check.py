"""Learning check (a benchmark, not a test): can the CPU presets learn their task in time?

    python benchmarks/learning_check.py [--only sudoku4_tiny] [--set k=v ...]

Targets (issue 3): sudoku4_tiny >= 95% exact accuracy on its held-out split within 5 minutes, and
sudoku6_small >= 95% on its 500 held-out 6x6 puzzles within 10 minutes, on a 2-core CPU. Prints the
learning curve (step, wall seconds, eval exact accuracy) and the machine load (the CPU is shared, so
wall times are noisy); the last line is JSON. Wall seconds include dataset building and evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trm_core.config import load_config  # noqa: E402
from trm_core.data.store import build_from_config  # noqa: E402
from trm_core.train.loop import train  # noqa: E402

CHECKS = {"sudoku4_tiny": 300.0, "sudoku6_small": 600.0}
TARGET = 0.95


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def run_check(preset: str, budget_s: float, overrides: list[str], stop_early: bool) -> dict:
    sets = [f"train.time_budget_s={budget_s}"] + (["train.target_exact_acc=0.95"] if stop_early else []) + overrides
    cfg = load_config(preset, sets)
    # the dataset is built (or found in the cache) before the clock starts; its time is printed
    t_build = time.perf_counter()
    build_from_config(cfg.data)
    build_s = time.perf_counter() - t_build
    curve = []
    start = time.perf_counter()

    def report(m, _checkpoint_dir):
        wall = time.perf_counter() - start
        curve.append({"step": m["step"], "wall_s": round(wall, 1), "eval/exact_acc": m["eval/exact_acc"]})
        print(f"  {m['step']:>6} {wall:>8.1f} {m['eval/exact_acc']:>9.4f} {m['eval/cell_acc']:>9.4f} "
              f"{m['eval/avg_steps']:>6.2f}   ({load()})", flush=True)

    print(f"{preset}: target {TARGET:.0%} exact within {budget_s:.0f} s; dataset ready in {build_s:.1f} s; "
          f"{load()}")
    print(f"  {'step':>6} {'wall s':>8} {'exact':>9} {'cell':>9} {'steps':>6}")
    final = train(cfg, report=report)
    reached = next((c for c in curve if c["eval/exact_acc"] >= TARGET), None)
    verdict = f"reached {TARGET:.0%} at {reached['wall_s']} s (step {reached['step']})" if reached else "did NOT reach the target"
    print(f"{preset}: {verdict}; final exact {final['eval/exact_acc']:.4f} on {int(final['eval/n_puzzles'])} "
          f"held-out puzzles; {load()}\n", flush=True)
    return {"preset": preset, "budget_s": budget_s, "dataset_build_s": round(build_s, 1), "reached_at_s": reached["wall_s"] if reached else None,
            "final_exact_acc": final["eval/exact_acc"], "n_eval": final["eval/n_puzzles"], "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CHECKS), help="run one check")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    parser.add_argument("--full", action="store_true", help="train for the whole budget (default: stop at 95%%)")
    args = parser.parse_args()
    results = [run_check(p, b, args.overrides, not args.full) for p, b in CHECKS.items() if args.only in (None, p)]
    print(json.dumps({"target": TARGET, "results": results}))


if __name__ == "__main__":
    main()
