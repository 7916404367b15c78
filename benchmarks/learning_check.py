"""Learning check (a benchmark, not a test): can the CPU presets learn their task, and does a change of
numerics or speed (bf16, compile) learn as well?

    python benchmarks/learning_check.py [--only sudoku4_tiny] [--set k=v ...]
    python benchmarks/learning_check.py --only sudoku6_small --seeds 0,1,2 --full \\
        --arms "fp32=train.dtype=float32;bf16=train.dtype=bfloat16" --jobs 2

Targets (issue 3): sudoku4_tiny >= 95% exact accuracy on its held-out split within 5 minutes, and
sudoku6_small >= 95% on its 500 held-out 6x6 puzzles within 10 minutes, on a 2-core CPU.

With several arms (`--arms NAME=k=v,k=v;NAME=...`, each a set of overrides) and seeds, every
(arm, seed) run is printed and the arms are compared with the first one: the step of the 95%
crossing must lie within the seeds' spread (the difference of the arms' means at most the larger
range over seeds), and the final exact accuracy within 1 point (issue 23's gate for train.dtype:
auto). `--jobs N` runs N trainings at once, each on cores / N threads (steps and accuracies do not
depend on the load; wall seconds do, so compare them only between arms run alike). Wall seconds
include evaluation, not dataset building. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trm_core.config import load_config  # noqa: E402
from trm_core.data.store import build_from_config  # noqa: E402
from trm_core.train.loop import train  # noqa: E402

CHECKS = {"sudoku4_tiny": 300.0, "sudoku6_small": 600.0}
TARGET = 0.95


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def run_check(preset: str, budget_s: float, overrides: list[str], stop_early: bool, quiet: bool = False) -> dict:
    sets = ([f"train.time_budget_s={budget_s}"] if budget_s else []) + (["train.target_exact_acc=0.95"] if stop_early else [])
    cfg = load_config(preset, sets + overrides)
    # the dataset is built (or found in the cache) before the clock starts; its time is printed
    t_build = time.perf_counter()
    build_from_config(cfg.data)
    build_s = time.perf_counter() - t_build
    curve = []
    start = time.perf_counter()
    say = (lambda *a, **k: None) if quiet else print

    def report(m, _checkpoint_dir):
        wall = time.perf_counter() - start
        curve.append({"step": m["step"], "wall_s": round(wall, 1), "eval/exact_acc": m["eval/exact_acc"]})
        say(f"  {m['step']:>6} {wall:>8.1f} {m['eval/exact_acc']:>9.4f} {m['eval/cell_acc']:>9.4f} "
            f"{m['eval/avg_steps']:>6.2f}   ({load()})", flush=True)

    budget = f"within {budget_s:.0f} s" if budget_s else f"in {cfg.train.steps} steps"
    say(f"{preset}: target {TARGET:.0%} exact {budget}; dataset ready in {build_s:.1f} s; {load()}")
    say(f"  {'step':>6} {'wall s':>8} {'exact':>9} {'cell':>9} {'steps':>6}")
    final = train(cfg, report=report)
    reached = next((c for c in curve if c["eval/exact_acc"] >= TARGET), None)
    verdict = f"reached {TARGET:.0%} at {reached['wall_s']} s (step {reached['step']})" if reached else "did NOT reach the target"
    say(f"{preset}: {verdict}; final exact {final['eval/exact_acc']:.4f} on {int(final['eval/n_puzzles'])} "
        f"held-out puzzles; {load()}\n", flush=True)
    return {"preset": preset, "overrides": overrides, "budget_s": budget_s, "dataset_build_s": round(build_s, 1),
            "reached_at_s": reached["wall_s"] if reached else None, "reached_at_step": reached["step"] if reached else None,
            "final_exact_acc": final["eval/exact_acc"], "final_step": final["step"], "wall_s": round(time.perf_counter() - start, 1),
            "n_eval": final["eval/n_puzzles"], "curve": curve}


def parse_arms(text: str) -> dict[str, list[str]]:
    """'fp32=train.dtype=float32;bf16=train.dtype=bfloat16,train.compile=true' -> {name: overrides}."""
    arms: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, sets = part.partition("=")
        if not name or name in arms:
            raise SystemExit(f"error: --arms needs NAME=k=v,... parts with distinct names, but got {part!r}")
        arms[name] = [s for s in sets.split(",") if s]
    return arms


def _one(job: tuple) -> tuple:
    preset, arm, seed, overrides, threads, budget_s, stop_early = job
    sets = overrides + [f"seed={seed}", f"train.cpu_threads={threads}"]
    return preset, arm, seed, run_check(preset, budget_s, sets, stop_early, quiet=True)


def _spread(values: list[float]) -> tuple[float, float, float]:
    mean = statistics.mean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0, max(values) - min(values)


def compare(results: dict, arms: list[str]) -> list[dict]:
    """Each arm against the first: the 95% crossing step within the seeds' spread, final exact within 1 point."""
    verdicts = []
    base = arms[0]
    for preset, by_arm in results.items():
        def stats(arm):
            runs = by_arm[arm]
            steps = [r["reached_at_step"] for r in runs]
            finals = [r["final_exact_acc"] for r in runs]
            return (None if None in steps else _spread([float(s) for s in steps])), _spread(finals)
        (b_steps, b_final) = stats(base)
        for arm in arms[1:]:
            a_steps, a_final = stats(arm)
            same_step = (b_steps is not None and a_steps is not None
                         and abs(a_steps[0] - b_steps[0]) <= max(a_steps[2], b_steps[2]))
            same_final = abs(a_final[0] - b_final[0]) <= 0.01
            verdicts.append({"preset": preset, "arm": arm, "vs": base, "crossing_step": a_steps and a_steps[:2],
                             "base_crossing_step": b_steps and b_steps[:2], "final": a_final[:2], "base_final": b_final[:2],
                             "crossing_within_spread": same_step, "final_within_1pt": same_final,
                             "holds": bool(same_step and same_final)})
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run one preset (default: the two checks)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    parser.add_argument("--full", action="store_true", help="train for the whole budget (default: stop at 95%%)")
    parser.add_argument("--seeds", default="", help="comma list of seeds (default: the preset's)")
    parser.add_argument("--arms", default="", help="NAME=k=v,...;NAME=... arms compared with the first")
    parser.add_argument("--steps-only", action="store_true", help="no time budget: train.steps of the preset")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once, each on cores / jobs threads")
    args = parser.parse_args()
    presets = [args.only] if args.only else list(CHECKS)
    if not args.arms and not args.seeds:
        results = [run_check(p, CHECKS.get(p, 0.0) if not args.steps_only else 0.0, args.overrides, not args.full)
                   for p in presets]
        print(json.dumps({"target": TARGET, "results": results}))
        return
    arms = parse_arms(args.arms) if args.arms else {"default": []}
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [0]
    threads = max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    jobs = [(p, arm, seed, args.overrides + sets, threads, 0.0 if args.steps_only else CHECKS.get(p, 0.0), not args.full)
            for p in presets for seed in seeds for arm, sets in arms.items()]  # arms interleaved per seed
    print(f"{len(jobs)} runs ({', '.join(presets)} x arms {', '.join(arms)} x seeds {seeds}), {args.jobs} at a time, "
          f"{threads} thread(s) each; {load()}", flush=True)
    results: dict[str, dict[str, list]] = {p: {a: [] for a in arms} for p in presets}
    print(f"{'preset':<14}{'arm':<10}{'seed':>5}{'95% at step':>13}{'at s':>8}{'final exact':>13}{'steps':>7}{'wall s':>8}")
    with ProcessPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for preset, arm, seed, r in pool.map(_one, jobs):
            results[preset][arm].append(r)
            print(f"{preset:<14}{arm:<10}{seed:>5}{str(r['reached_at_step']):>13}{str(r['reached_at_s']):>8}"
                  f"{r['final_exact_acc']:>13.4f}{r['final_step']:>7}{r['wall_s']:>8}", flush=True)
    verdicts = compare(results, list(arms)) if len(arms) > 1 else []
    for v in verdicts:
        print(f"{v['preset']}: {v['arm']} vs {v['vs']}: 95% at step {v['crossing_step']} vs {v['base_crossing_step']} "
              f"(within spread: {v['crossing_within_spread']}), final {v['final']} vs {v['base_final']} "
              f"(within 1 point: {v['final_within_1pt']}) -> {'holds' if v['holds'] else 'does NOT hold'}")
    print(json.dumps({"target": TARGET, "arms": arms, "seeds": seeds, "results": results, "verdicts": verdicts}))


if __name__ == "__main__":
    main()
