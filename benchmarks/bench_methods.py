"""Step cost of each training method relative to the baseline step, measured side by side in one run.

    python benchmarks/bench_methods.py [--preset sudoku6_small] [--rounds 5] [--steps 10] [--threads 1]

Every variant is the preset plus a few config keys. All variants are built first, warmed up, then
timed in interleaved rounds (variant A, B, C, ... then again), so a change in the machine's load
hits every variant alike; the table reports the median over rounds of milliseconds per optimiser
step and the ratio to the baseline. A step is one supervision step of the whole batch (B puzzles;
with K chains, B*K rows), on random puzzles of the preset's shape (trm_core.train.bench).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trm_core.config import load_config  # noqa: E402
from trm_core.model.trm import build_model, task_shape  # noqa: E402
from trm_core.rng import Streams  # noqa: E402
from trm_core.runtime import autocast_factory, uses_bf16  # noqa: E402
from trm_core.train.act import ActBatch  # noqa: E402
from trm_core.train.bench import RandomPuzzles  # noqa: E402
from trm_core.train.loop import train_step  # noqa: E402
from trm_core.train.optim import EMA, OPTIMIZERS  # noqa: E402
from trm_core.train.session import Session  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "baseline (TRM)": [],
    "K=2 chains (WTA)": ["recursion.chains=2"],
    "K=4 chains (WTA)": ["recursion.chains=4"],
    "K=8 chains (WTA)": ["recursion.chains=8"],
    "SIC SwiGLU": ["model.swiglu=sic"],
    "Muon + AdamW": ["optim.name=muon_adamw"],
    "SIC recipe (K=1)": ["model.swiglu=sic", "model.halt_register=true", "optim.name=muon_adamw"],
    "EqR RI + NI": ["recursion.latent_init=normal", "recursion.damping=0.05", "recursion.noise_beta=0.01"],
    "CGAR stage 1 (n=1,T=1)": ["recursion.depth_schedule=cgar", "recursion.cgar_stages=0:1x1"],
    "CGAR stage 2 (n=2,T=1)": ["recursion.depth_schedule=cgar", "recursion.cgar_stages=0:2x1"],
    "CGAR weighting": ["loss.step_weighting=cgar_paper"],
    "random T (+-1)": ["recursion.depth_schedule=random", "recursion.random_spread_t=1", "recursion.random_spread_n=0"],
    "random n (+-1)": ["recursion.depth_schedule=random", "recursion.random_spread_t=0", "recursion.random_spread_n=1"],
    "random N_sup (+-2)": ["recursion.depth_schedule=random", "recursion.random_spread_t=0", "recursion.random_spread_n=0",
                           "recursion.random_spread_nsup=2"],
    "fixed point (anderson, 6)": ["recursion.solver=fixed_point", "recursion.fp_max_iter=6"],
}


def build(preset: str, sets: list[str]) -> tuple[Session, int, object]:
    """A session of the variant, and the autocast its config trains with (train.dtype: auto is bf16 on
    a CPU with native bf16, as in training)."""
    cfg = load_config(preset, ["device=cpu"] + sets)
    torch.manual_seed(cfg.seed)
    vocab, cells = task_shape(cfg.data)
    model = build_model(cfg, vocab, cells)
    ema = EMA(model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
    batch = ActBatch.empty(model, cfg.train.batch_size, cfg.recursion.chains, torch.device("cpu"))
    s = Session(cfg, torch.device("cpu"), model, ema, OPTIMIZERS.get(cfg.optim.name)(model, cfg.optim),
                RandomPuzzles(vocab, cells, cfg.seed), batch, Streams.seeded(cfg.seed))
    return s, cfg.train.batch_size, autocast_factory(torch.device("cpu"), cfg.train.dtype, cfg.train.precision)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="sudoku6_small")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="", help="comma list of variant-name prefixes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in VARIANTS if not args.only or any(n.startswith(o) for o in args.only.split(","))]
    if "baseline (TRM)" not in names:
        names.insert(0, "baseline (TRM)")
    sessions = {n: build(args.preset, VARIANTS[n]) for n in names}
    for s, _, autocast in sessions.values():  # warm-up: allocator, first refills
        for _ in range(3):
            train_step(s, autocast)
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:
            s, _, autocast = sessions[n]
            start = time.perf_counter()
            for _ in range(args.steps):
                stats = train_step(s, autocast)
            float(stats["loss"])
            times[n].append((time.perf_counter() - start) / args.steps)
    base = statistics.median(times["baseline (TRM)"])
    dtype = "bf16 autocast" if uses_bf16(torch.device("cpu"), sessions["baseline (TRM)"][0].cfg.train.dtype) else "fp32"
    print(f"preset {args.preset}, {args.threads} CPU thread(s), {dtype}, eager, {args.rounds} interleaved rounds x "
          f"{args.steps} steps; median ms per optimiser step")
    print(f"{'variant':<28}{'ms/step':>10}{'puzzle-steps/s':>16}{'vs baseline':>13}  keys")
    for n in names:
        ms = statistics.median(times[n])
        batch = sessions[n][1]
        print(f"{n:<28}{ms * 1e3:>10.1f}{batch / ms:>16.0f}{ms / base:>12.2f}x  {' '.join(VARIANTS[n])}")



if __name__ == "__main__":
    main()
