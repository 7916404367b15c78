"""Is seed-batched training (issue 14's `train.replicas`) worth building on this machine? Measured.

S independent models of a preset (different seeds) are trained three ways, one supervision step
each (the model's real forward: T passes of n + 1 calls of f, the last with a graph; cross entropy;
backward; AdamW), and the table prints puzzle-steps/s summed over the S replicas:

- loop: one process steps the S models one after another (plain PyTorch);
- vmap: one process steps all S as one batched computation (torch.func.stack_module_state +
  vmap(functional_call), one AdamW over the stacked weights, which is per-replica AdamW because
  AdamW is elementwise) - the design issue 14 proposes;
- processes: S separate processes, each stepping one model (what a sweep with S concurrent
  trials does), sharing the same cores; their rates are summed.

Every process uses `--threads` intra-op threads. The ACT refill and halting are left out of all
three (they are the same per replica either way). Rounds interleave loop and vmap; the processes
run after them, in the same run.

    python benchmarks/bench_replicas.py [--preset sudoku4_tiny] [--replicas 1,4,8] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def build(preset: str, s: int):
    from trm_core.config import load_config
    from trm_core.model.trm import build_model, task_shape

    cfg = load_config(preset, ["optim.ema_decay=0"])
    vocab, cells = task_shape(cfg.data)
    models = []
    for seed in range(s):
        torch.manual_seed(seed)
        models.append(build_model(cfg, vocab, cells))
    b, r = cfg.train.batch_size, cfg.recursion
    g = torch.Generator().manual_seed(0)
    m = models[0]
    data = dict(x=torch.randint(1, vocab, (s, b, cells), generator=g), y=torch.randint(2, vocab, (s, b, cells), generator=g),
                z_h=torch.randn(s, b, m.seq_len, m.width, generator=g), z_l=torch.randn(s, b, m.seq_len, m.width, generator=g))
    return cfg, models, data, (r.n_inner, r.n_outer)


def loop_step(preset: str, s: int):
    from trm_core.model.latents import Carry

    cfg, models, d, (n, t) = build(preset, s)
    opts = [torch.optim.AdamW(m.parameters(), lr=cfg.optim.lr, foreach=True) for m in models]

    def step():
        for i, (m, opt) in enumerate(zip(models, opts)):
            out = m(Carry(d["z_h"][i], d["z_l"][i]), d["x"][i], n, t)
            loss = F.cross_entropy(out.logits.flatten(0, 1), d["y"][i].flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return loss.detach()

    return step, cfg.train.batch_size * s


def vmap_step(preset: str, s: int):
    from torch.func import functional_call, stack_module_state, vmap

    from trm_core.model.latents import Carry

    cfg, models, d, (n, t) = build(preset, s)
    params, buffers = stack_module_state(models)  # (S, ...) leaves that require grad
    skeleton = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.AdamW(list(params.values()), lr=cfg.optim.lr, foreach=True)

    def one(p, b, z_h, z_l, x, y):
        out = functional_call(skeleton, (p, b), (Carry(z_h, z_l), x, n, t))
        return F.cross_entropy(out.logits.flatten(0, 1), y.flatten())

    batched = vmap(one)

    def step():
        losses = batched(params, buffers, d["z_h"], d["z_l"], d["x"], d["y"])
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()  # replicas share no weights, so each gets its own loss's gradient
        opt.step()
        return losses.detach()

    return step, cfg.train.batch_size * s


def rate(step, puzzles: int, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        out = step()
    float(out.sum())
    return puzzles * steps / (time.perf_counter() - t0)


def worker(preset: str, steps: int) -> None:
    """One process, one model: prints its puzzle-steps/s after a warm-up."""
    step, puzzles = loop_step(preset, 1)
    step()
    print(rate(step, puzzles, steps))


def processes(preset: str, s: int, steps: int, threads: int) -> float:
    cmd = [sys.executable, __file__, "--worker", "--preset", preset, "--steps", str(steps), "--threads", str(threads)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(s)]
    return sum(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="sudoku4_tiny")
    ap.add_argument("--replicas", default="1,4,8")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of every process")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per side per round")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        return worker(args.preset, args.steps)
    print(f"{args.preset}, {args.threads} thread(s) per process, {args.rounds} interleaved rounds x {args.steps} steps")
    print(f"{'S':>3}{'loop ps/s':>12}{'vmap ps/s':>12}{'processes ps/s':>16}{'vmap / loop':>13}"
          f"{'vmap / S=1':>12}{'processes / S=1':>17}")
    counts = sorted({1, *(int(x) for x in args.replicas.split(","))})  # S = 1 is the reference rate
    single = None
    for s in counts:
        sides = {"loop": loop_step(args.preset, s), "vmap": vmap_step(args.preset, s)}
        for step, _ in sides.values():
            step()  # warm-up
        rates = {k: [] for k in sides}
        for _ in range(args.rounds):
            for k, (step, puzzles) in sides.items():
                rates[k].append(rate(step, puzzles, args.steps))
        loop, vm = statistics.median(rates["loop"]), statistics.median(rates["vmap"])
        procs = processes(args.preset, s, args.steps * args.rounds, args.threads)
        single = single or loop
        print(f"{s:>3}{loop:>12.0f}{vm:>12.0f}{procs:>16.0f}{vm / loop:>12.2f}x{vm / single:>11.2f}x{procs / single:>16.2f}x")


if __name__ == "__main__":
    main()
