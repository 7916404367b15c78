"""Our training step against the public reference TRM's, same configuration, measured in one run.

The reference is public code; it is never vendored here. Check it out and give this script its
path, in an environment that also has the reference's imports (einops, pydantic), e.g.:

    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels /tmp/trm-ref
    pip install --target /tmp/benchlib einops        # beside this project's venv
    PYTHONPATH=/tmp/benchlib python benchmarks/bench_vs_reference.py --reference /tmp/trm-ref \\
        [--threads 2] [--only "paper b32"] [--sides ours_fp32,ours_amp,ours_ref,ref_fp32,ref_bf16]

A step is what each trainer does per optimiser step: the ACT refill (halted rows take new
puzzles), one supervision step (T passes of n + 1 calls of the block stack, the last with a
graph), the loss (stablemax cross entropy + 0.5 halt BCE), backward and the optimiser. Both sides
use the same optimiser (torch AdamW, foreach: the reference's Adam-atan2 is a CUDA kernel) and
draw random puzzles of the same shape, so the comparison is of the model and loop machinery.

Sides (`--sides`, any of):
- ours_fp32, ours_amp (bf16 autocast over fp32 weights and carry), ours_ref (`train.precision:
  reference`: TRM's numerics, bf16 forward and carry, fp32 weights cast at use, norms in fp32);
  each with `_compiled` appended: train.compile (torch.compile of the block stack).
- ref_fp32, ref_bf16 (the reference's own forward_dtype, its default); `_compiled`: torch.compile of
  the whole reference model, as its pretrain.py does.
Timing is interleaved over rounds (every side in turn), medians shown, and every side's ratio to
the reference's bf16 (above 1: faster than the reference's default). Compile time is spent in the
warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

CONFIGS = {
    # the paper configuration: hidden 512, 81 cells + 16 prefix slots, n 6, T 3, MLP mixer
    "paper b16": dict(hidden=512, cells=81, prefix=16, vocab=11, n=6, t=3, batch=16),
    "paper b64": dict(hidden=512, cells=81, prefix=16, vocab=11, n=6, t=3, batch=64),
    # issue 23's paper shape: no prefix (EqR's / SIC's layout), batch 32
    "paper b32": dict(hidden=512, cells=81, prefix=0, vocab=11, n=6, t=3, batch=32),
    # a tiny configuration: hidden 64, 16 cells (4x4), batch 128
    "tiny b128": dict(hidden=64, cells=16, prefix=1, vocab=6, n=2, t=2, batch=128),
}
SIDES = ["ours_fp32", "ours_amp", "ours_ref", "ours_fp32_compiled", "ours_amp_compiled", "ours_ref_compiled",
         "ref_fp32", "ref_bf16", "ref_fp32_compiled", "ref_bf16_compiled"]


def ours(c: dict, side: str, device: str = "cpu"):
    from trm_core.config import load_config
    from trm_core.model.trm import build_model
    from trm_core.rng import Streams
    from trm_core.train.act import ActBatch
    from trm_core.train.bench import RandomPuzzles
    from trm_core.train.loop import train_step
    from trm_core.train.optim import OPTIMIZERS
    from trm_core.runtime import autocast_factory, forward_dtype
    from trm_core.train.session import Session

    kind = side.split("_")[1]
    dtype, precision = {"fp32": ("float32", "amp"), "amp": ("bfloat16", "amp"), "ref": ("bfloat16", "reference")}[kind]
    side_len = int(c["cells"] ** 0.5)
    cfg = load_config("sudoku_extreme_trm", [
        "data.task=sudoku", f"data.board_size={side_len}", f"model.hidden_size={c['hidden']}", f"model.prefix_len={c['prefix']}",
        f"recursion.n_inner={c['n']}", f"recursion.n_outer={c['t']}", f"train.batch_size={c['batch']}", "optim.name=adamw",
        "optim.warmup_steps=0", "optim.ema_decay=0", f"train.dtype={dtype}", f"train.precision={precision}",
        f"device={device}", "model.swiglu_multiple=256"])
    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_model(cfg, c["vocab"], c["cells"]).to(dev)
    model.forward_dtype = forward_dtype(dev, dtype, precision)
    if side.endswith("_compiled"):  # train.compile: torch.compile of the block stack f (forward and backward)
        model.compile_f()
    batch = ActBatch.empty(model, c["batch"], 1, dev)
    s = Session(cfg, dev, model, None, OPTIMIZERS.get("adamw")(model, cfg.optim),
                RandomPuzzles(c["vocab"], c["cells"], 0), batch, Streams.seeded(0, dev))
    autocast = autocast_factory(dev, dtype, precision)

    def step():
        return train_step(s, autocast)["loss"]

    return step, model.n_params()


def reference(c: dict, side: str, ref_dir: str, device: str = "cpu"):
    sys.path.insert(0, ref_dir)
    from models.losses import ACTLossHead  # the reference's own modules
    from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1

    dtype = "bfloat16" if side.startswith("ref_bf16") else "float32"
    arch = dict(batch_size=c["batch"], seq_len=c["cells"], puzzle_emb_ndim=c["hidden"] if c["prefix"] else 0,
                num_puzzle_identifiers=1, vocab_size=c["vocab"], H_cycles=c["t"], L_cycles=c["n"], H_layers=0,
                L_layers=2, hidden_size=c["hidden"], expansion=4, num_heads=8, pos_encodings="none", halt_max_steps=16,
                halt_exploration_prob=0.1, forward_dtype=dtype, mlp_t=True, puzzle_emb_len=c["prefix"],
                no_ACT_continue=True)
    torch.manual_seed(0)
    dev = torch.device(device)
    with torch.device(dev):
        model = ACTLossHead(TinyRecursiveReasoningModel_ACTV1(arch), loss_type="stablemax_cross_entropy")
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1.0, foreach=True)
    forward = torch.compile(model) if side.endswith("_compiled") else model  # its pretrain.py compiles the model
    g = torch.Generator().manual_seed(0)

    def new_batch():
        return {"inputs": torch.randint(1, c["vocab"], (c["batch"], c["cells"]), generator=g).to(dev),
                "labels": torch.randint(2, c["vocab"], (c["batch"], c["cells"]), generator=g).to(dev),
                "puzzle_identifiers": torch.zeros(c["batch"], dtype=torch.int32, device=dev)}

    with torch.device(dev):
        carry = model.initial_carry(new_batch())

    def step():
        nonlocal carry
        carry, loss, _, _, _ = forward(return_keys=[], carry=carry, batch=new_batch())
        opt.zero_grad(set_to_none=True)
        (loss / c["batch"]).backward()
        opt.step()
        return loss.detach()

    return step, sum(p.numel() for p in model.parameters())


def build(c: dict, side: str, ref_dir: str, device: str):
    return ours(c, side, device) if side.startswith("ours") else reference(c, side, ref_dir, device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def compare(c: dict, sides: list[str], ref_dir: str, device: str, rounds: int, steps: int, warmup: int = 2) -> dict:
    """{side: median seconds per step} over interleaved rounds, and the parameter counts."""
    built = {s: build(c, s, ref_dir, device) for s in sides}
    for fn, _ in built.values():  # warm-up (and compilation)
        for _ in range(warmup):
            float(fn())
    times: dict[str, list[float]] = {s: [] for s in sides}
    for _ in range(rounds):
        for s, (fn, _) in built.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                loss = fn()
            float(loss)
            sync(device)
            times[s].append((time.perf_counter() - t0) / steps)
    return {"seconds": {s: statistics.median(v) for s, v in times.items()},
            "params": {s: p for s, (_, p) in built.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="a checkout of SamsungSAILMontreal/TinyRecursiveModels")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    ap.add_argument("--only", default="", help="comma list of configuration names")
    ap.add_argument("--sides", default="ours_fp32,ours_amp,ours_ref,ref_fp32,ref_bf16", help=f"any of {','.join(SIDES)}")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    sides = [s.strip() for s in args.sides.split(",")]
    bad = [s for s in sides if s not in SIDES]
    if bad:
        raise SystemExit(f"error: --sides must be from {','.join(SIDES)}, but got {','.join(bad)}")
    torch.set_num_threads(args.threads)
    base = "ref_bf16" if "ref_bf16" in sides else sides[0]
    print(f"{args.device}, {args.threads} thread(s), {args.rounds} interleaved rounds x {args.steps} steps; "
          f"ratios: {base} time / side time (above 1: faster than {base})")
    for name, c in CONFIGS.items():
        if args.only and name not in args.only.split(","):
            continue
        r = compare(c, sides, args.reference, args.device, args.rounds, args.steps)
        params = "/".join(sorted({f"{p:,}" for p in r["params"].values()}))
        print(f"{name} ({params} parameters)")
        print(f"  {'side':<20}{'ms/step':>10}{'puzzle-steps/s':>16}{f'vs {base}':>14}")
        for s in sides:
            t = r["seconds"][s]
            print(f"  {s:<20}{t * 1e3:>10.1f}{c['batch'] / t:>16.2f}{r['seconds'][base] / t:>13.2f}x")


if __name__ == "__main__":
    main()
