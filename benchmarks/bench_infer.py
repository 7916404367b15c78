"""Test-time engine benchmarks (not tests): breadth in one batch vs B separate runs, ACT queue vs full depth.

    python benchmarks/bench_infer.py [--checkpoint DIR] [--puzzles 200] [--breadth 8] [--depth 16]
        [--act-depth 64] [--threads 1] [--set k=v ...]

Without --checkpoint it first trains sudoku4_tiny for 300 steps (a model whose halting head has
learned something, so ACT has something to stop). Timing does not depend on whether restarts
differ (random init / noise, e.g. --set recursion.latent_init=normal): every row costs the same.
Both comparisons run side by side in one process and print a table with ratios; each also checks
that the two ways give the same answers. The breadth ways are timed interleaved over --repeat
rounds (medians); the ACT ways --repeat times each, the fastest counting (the machine is shared).
1. Breadth: one rollout of B restarts (B x puzzles rows in one queue) vs B rollouts of one restart
   each (restart r alone), same depth: wall seconds and the ratio; and the one batch against a single
   restart alone, per row (issue 23's goal: B restarts cost at most B times one).
2. ACT: one restart to depth D with rows leaving at their first halt vs every row to depth D:
   row-steps (NFE), wall seconds, exact accuracy (the halted answers: identical by construction).
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from trm_core.config import load_config  # noqa: E402
from trm_core.infer.engine import rollout  # noqa: E402
from trm_core.infer.members import load_members, member_inputs  # noqa: E402
from trm_core.infer.rollout import Layout, Settings  # noqa: E402
from trm_core.infer.transforms import build_transforms  # noqa: E402
from trm_core.infer.views import build_view, member_exact, state_at  # noqa: E402
from trm_core.train.loop import train  # noqa: E402


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


REPEAT = 3


def timed(fn):
    """(output, the fastest of REPEAT runs' wall seconds): the machine is shared, so take the minimum."""
    best, out = float("inf"), None
    for _ in range(REPEAT):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def breadth(ld, members, n, b, d, max_batch):
    """The three ways interleaved round by round (REPEAT rounds), each way's median wall seconds."""
    one = Settings(d, (d,), False, max_batch)
    ways = {"batched": lambda: rollout(ld, members, Layout(0, 1, b, n), one),
            "sequential": lambda: [rollout(ld, members, Layout(0, 1, 1, n, first_restart=r), one) for r in range(b)],
            "one": lambda: rollout(ld, members, Layout(0, 1, 1, n, first_restart=1), one)}
    times, out = {k: [] for k in ways}, {}
    for _ in range(REPEAT):
        for k, fn in ways.items():
            start = time.perf_counter()
            out[k] = fn()
            times[k].append(time.perf_counter() - start)
    t_batch, t_seq, t_one = (statistics.median(times[k]) for k in ("batched", "sequential", "one"))
    batched, alone = out["batched"], out["sequential"]
    same = all(torch.equal(batched.snapshots[d].pred[r * n:(r + 1) * n], rec.snapshots[d].pred) for r, rec in enumerate(alone))
    return {"batched_s": t_batch, "sequential_s": t_seq, "ratio": t_seq / t_batch, "same_answers": same,
            "rows": b * n, "row_steps": batched.row_steps, "one_restart_s": t_one,
            "batched_over_one": t_batch / t_one, "per_row_batched_over_one": t_batch / (b * t_one)}


def act(ld, members, labels, n, d, max_batch):
    depths = tuple(sorted({x for x in (d // 8, d // 4, d // 2, d) if x >= 1}))
    full, t_full = timed(lambda: rollout(ld, members, Layout(0, 1, 1, n), Settings(d, depths, False, max_batch)))
    queue, t_act = timed(lambda: rollout(ld, members, Layout(0, 1, 1, n), Settings(d, depths, True, max_batch)))
    acc = {}
    for name, rec in (("full", full), ("act", queue)):
        acc[name] = float(member_exact(build_view([rec], labels, d, 1, halted=True)).float().mean())
    acc["full_last_step"] = float(member_exact(build_view([full], labels, d, 1, halted=False)).float().mean())
    same = torch.equal(state_at(full, d, True)[0].pred, state_at(queue, d, True)[0].pred)
    return {"full_nfe": full.row_steps / n, "act_nfe": queue.row_steps / n, "nfe_ratio": full.row_steps / queue.row_steps,
            "full_s": t_full, "act_s": t_act, "wall_ratio": t_full / t_act, "halted_exact_acc": acc["act"],
            "same_answers": same and acc["full"] == acc["act"], "full_depth_exact_acc": acc["full_last_step"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--puzzles", type=int, default=200)
    p.add_argument("--breadth", type=int, default=8)
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--act-depth", type=int, default=64)
    p.add_argument("--max-batch", type=int, default=256, help="the queue size (the engine's CPU default)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3, help="time each way this many times, keep the fastest")
    p.add_argument("--set", dest="overrides", nargs="*", default=[])
    args = p.parse_args()
    global REPEAT
    REPEAT = args.repeat
    ckpt = args.checkpoint
    if ckpt is None:
        out = tempfile.mkdtemp(prefix="bench_infer_")
        cfg = load_config("sudoku4_tiny", ["train.steps=300", "train.eval_interval=300", f"train.cpu_threads={args.threads}",
                                           "device=cpu"])
        train(cfg, out_dir=out)
        ckpt = os.path.join(out, "checkpoints", "step_00000300")
    sets = [f"train.cpu_threads={args.threads}", *args.overrides]
    (ld,), eval_set, task = load_members([ckpt], sets, limit=args.puzzles)
    members = member_inputs(eval_set, build_transforms("1", task), ld.model.h_init.device)
    labels = torch.as_tensor(eval_set.labels.astype("int64"))
    n = len(eval_set)
    print(f"checkpoint {ckpt} ({task.describe()}), {n} puzzles, {args.threads} thread(s), {load()}")
    b = breadth(ld, members, n, args.breadth, args.depth, args.max_batch)
    print(f"\nbreadth {args.breadth} at depth {args.depth}:")
    print(f"{'way':<34} {'wall s':>8} {'rows':>7}")
    print(f"{'one batch of B restarts':<34} {b['batched_s']:>8.2f} {b['rows']:>7}")
    print(f"{'B runs of one restart':<34} {b['sequential_s']:>8.2f} {n:>7}")
    print(f"{'one restart alone':<34} {b['one_restart_s']:>8.2f} {n:>7}")
    print(f"ratio (B runs / one batch): {b['ratio']:.2f}x; same answers: {b['same_answers']}; one batch of B costs "
          f"{b['batched_over_one']:.2f}x one restart ({b['per_row_batched_over_one']:.2f}x per row)")
    a = act(ld, members, labels, n, args.act_depth, args.max_batch)
    print(f"\nACT queue vs full depth {args.act_depth} (one restart):")
    print(f"{'way':<34} {'avg NFE':>8} {'wall s':>8} {'exact acc':>10}")
    print(f"{'every row to depth D':<34} {a['full_nfe']:>8.1f} {a['full_s']:>8.2f} {a['full_depth_exact_acc']:>10.4f}")
    print(f"{'rows leave at their first halt':<34} {a['act_nfe']:>8.1f} {a['act_s']:>8.2f} {a['halted_exact_acc']:>10.4f}")
    print(f"NFE ratio {a['nfe_ratio']:.2f}x, wall ratio {a['wall_ratio']:.2f}x; halted answers identical: {a['same_answers']}")
    print(f"({load()})")
    print(json.dumps({"breadth": b, "act": a, "puzzles": n, "checkpoint": ckpt}))


if __name__ == "__main__":
    main()
