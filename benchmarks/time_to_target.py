"""Steps and compute to a target accuracy, per arm over seeds, from a finished sweep (a benchmark, not a test).

    python benchmarks/time_to_target.py runs/sweeps/hard_methods_cpu --target 0.75 \\
        --arms "TRM=recursion.depth_schedule=constant,recursion.latent_init=fixed,recursion.damping=0.0;CGAR=recursion.depth_schedule=cgar" \\
        --cost "CGAR=0:0.58,0.3:0.84,0.6:1"

For each finished trial of an arm (results.csv's `param:` columns equal every value) it reads Tune's
per-trial `progress.csv` (one row per evaluation) and reports the first evaluated step whose
`eval/exact_acc` reaches the target, the final accuracy, and the trial's wall seconds. Wall seconds
depend on the machine's load when the trial ran; so `--cost` gives an arm's cost of one training step
relative to the baseline step as a schedule over training progress (`0:c1,0.3:c2,...`: from that
fraction of train.steps on, a step costs c; measure it side by side with benchmarks/bench_methods.py),
and the table adds "baseline-step equivalents to target": the sum of the step costs up to the crossing.
Mean +- std over seeds with the reports' bootstrap interval (sweeper/report/stats.py).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from evidence_tts import fail, finished_rows, fmt, parse_arms  # noqa: E402
from sweeper.report.stats import describe  # noqa: E402


def parse_cost(text: str) -> dict[str, list[tuple[float, float]]]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, sched = part.partition("=")
        try:
            stages = sorted((float(a), float(b)) for a, b in (s.split(":") for s in sched.split(",")))
        except ValueError:
            fail(f"--cost is NAME=progress:cost,progress:cost;..., but got '{part}'")
        if not stages or stages[0][0] != 0:
            fail(f"a --cost schedule must start at progress 0, but got '{part}'")
        out[name.strip()] = stages
    return out


def step_cost(stages: list[tuple[float, float]], step: int, total: int) -> float:
    progress = (step - 1) / total
    return [c for p, c in stages if p <= progress][-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", type=Path)
    p.add_argument("--arms", required=True)
    p.add_argument("--target", type=float, required=True)
    p.add_argument("--cost", default="", help="NAME=progress:cost,...;NAME=... (arms not named cost 1 per step)")
    args = p.parse_args()
    arms, costs = parse_arms(args.arms), parse_cost(args.cost)
    if not (args.sweep / "results.csv").is_file():
        fail(f"SWEEP must be a sweep's folder holding results.csv, but got '{args.sweep}'")
    trials = {name: finished_rows(args.sweep, name, wanted) for name, wanted in arms.items()}  # bad arms refused first
    print(f"| arm | seeds | first eval step with exact >= {args.target:.0%} | baseline-step equivalents | final exact % | wall s |")
    print("|---|---|---|---|---|---|")
    for name, rows in trials.items():
        steps, equiv, final, wall, missed = [], [], [], [], 0
        for r in rows:
            total = int(float(r["steps_target"]))
            progress = (args.sweep / "tune" / f"trial_{r['trial_id']}" / "progress.csv").read_text().splitlines()
            curve = [(int(float(e["step"])), float(e["eval/exact_acc"]))
                     for e in csv.DictReader(progress) if e.get("eval/exact_acc")]
            hit = next((s for s, a in curve if a >= args.target), None)
            final.append(float(r["eval/exact_acc"]))
            wall.append(float(r["wall_s"]))
            if hit is None:
                missed += 1
                continue
            steps.append(hit)
            stages = costs.get(name, [(0.0, 1.0)])
            equiv.append(sum(step_cost(stages, s, total) for s in range(1, hit + 1)))
        note = f" ({missed} never reached it)" if missed else ""
        print(f"| {name} | {len(final)} | {fmt(describe(steps), 1, 0)}{note} | {fmt(describe(equiv), 1, 0)} | "
              f"{fmt(describe(final))} | {fmt(describe(wall), 1, 0)} |")


if __name__ == "__main__":
    main()
