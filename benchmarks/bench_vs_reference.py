"""Our training step against the public reference TRM's, same configuration, measured in one run.

The reference is public code; it is never vendored here. Check it out and give this script its
path, in an environment that also has the reference's imports (a benchmark-only venv):

    python -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0 einops pydantic -e .
    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels /tmp/trm-ref
    .venv-bench/bin/python benchmarks/bench_vs_reference.py --reference /tmp/trm-ref [--threads 2]

A step is what each trainer does per optimiser step: the ACT refill (halted rows take new
puzzles), one supervision step (T passes of n + 1 calls of the block stack, the last with a
graph), the loss (stablemax cross entropy + 0.5 halt BCE), backward and the optimiser. Both sides
run fp32 on the CPU and use the same optimiser (torch AdamW, foreach), so the comparison is of the
model and loop machinery; both draw random puzzles of the same shape. Timing is interleaved
(ours, ours compiled, reference, ours, ...) over rounds; the table shows medians and the ratios
(reference time / our time: above 1 means ours is faster). "compiled" is ours with
train.compile=true (torch.compile of the block stack; its compile time is spent in the warm-up).
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
    # a tiny configuration: hidden 64, 16 cells (4x4), batch 128
    "tiny b128": dict(hidden=64, cells=16, prefix=1, vocab=6, n=2, t=2, batch=128),
}


def ours(c: dict, compiled: bool = False):
    from trm_core.config import load_config
    from trm_core.model.trm import build_model
    from trm_core.rng import Streams
    from trm_core.train.act import ActBatch
    from trm_core.train.bench import RandomPuzzles
    from trm_core.train.loop import train_step
    from trm_core.train.session import Session

    side = int(c["cells"] ** 0.5)
    cfg = load_config("sudoku_extreme_trm", [
        "data.task=sudoku", f"data.board_size={side}", f"model.hidden_size={c['hidden']}", f"model.prefix_len={c['prefix']}",
        f"recursion.n_inner={c['n']}", f"recursion.n_outer={c['t']}", f"train.batch_size={c['batch']}", "optim.name=adamw",
        "optim.warmup_steps=0", "optim.ema_decay=0", "train.dtype=float32", "device=cpu", "model.swiglu_multiple=256"])
    torch.manual_seed(0)
    model = build_model(cfg, c["vocab"], c["cells"])
    if compiled:  # train.compile: torch.compile of the block stack f (forward and backward)
        model.compile_f()
    batch = ActBatch.empty(model, c["batch"], 1, torch.device("cpu"))
    from trm_core.train.optim import OPTIMIZERS

    s = Session(cfg, torch.device("cpu"), model, None, OPTIMIZERS.get("adamw")(model, cfg.optim),
                RandomPuzzles(c["vocab"], c["cells"], 0), batch, Streams.seeded(0))

    class Null:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def step():
        return train_step(s, Null)["loss"]

    return step, model.n_params()


def reference(c: dict, ref_dir: str):
    sys.path.insert(0, ref_dir)
    from models.losses import ACTLossHead  # the reference's own modules
    from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1

    arch = dict(batch_size=c["batch"], seq_len=c["cells"], puzzle_emb_ndim=c["hidden"], num_puzzle_identifiers=1,
                vocab_size=c["vocab"], H_cycles=c["t"], L_cycles=c["n"], H_layers=0, L_layers=2, hidden_size=c["hidden"],
                expansion=4, num_heads=8, pos_encodings="none", halt_max_steps=16, halt_exploration_prob=0.1,
                forward_dtype="float32", mlp_t=True, puzzle_emb_len=c["prefix"], no_ACT_continue=True)
    torch.manual_seed(0)
    model = ACTLossHead(TinyRecursiveReasoningModel_ACTV1(arch), loss_type="stablemax_cross_entropy")
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1.0, foreach=True)
    g = torch.Generator().manual_seed(0)

    def new_batch():
        return {"inputs": torch.randint(1, c["vocab"], (c["batch"], c["cells"]), generator=g),
                "labels": torch.randint(2, c["vocab"], (c["batch"], c["cells"]), generator=g),
                "puzzle_identifiers": torch.zeros(c["batch"], dtype=torch.int32)}

    carry = model.initial_carry(new_batch())

    def step():
        nonlocal carry
        carry, loss, _, _, _ = model(return_keys=[], carry=carry, batch=new_batch())
        opt.zero_grad(set_to_none=True)
        (loss / c["batch"]).backward()
        opt.step()
        return loss.detach()

    return step, sum(p.numel() for p in model.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="a checkout of SamsungSAILMontreal/TinyRecursiveModels")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    ap.add_argument("--only", default="", help="comma list of configuration names")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"fp32 on CPU, {args.threads} thread(s), {args.rounds} interleaved rounds x {args.steps} steps")
    print(f"{'configuration':<12}{'params ours/ref':>20}{'ours ms':>9}{'compiled ms':>13}{'ref ms':>9}"
          f"{'ref puzzle-steps/s':>20}{'ours vs ref':>13}{'compiled vs ref':>17}")
    for name, c in CONFIGS.items():
        if args.only and name not in args.only.split(","):
            continue
        sides = {"ours": ours(c), "compiled": ours(c, compiled=True), "reference": reference(c, args.reference)}
        for fn, _ in sides.values():  # warm-up (and compilation)
            for _ in range(2):
                float(fn())
        times = {k: [] for k in sides}
        for _ in range(args.rounds):
            for k, (fn, _) in sides.items():
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    loss = fn()
                float(loss)
                times[k].append((time.perf_counter() - t0) / args.steps)
        a, ac, b = (statistics.median(times[k]) for k in ("ours", "compiled", "reference"))
        params = f"{sides['ours'][1]:,}/{sides['reference'][1]:,}"
        print(f"{name:<12}{params:>20}{a * 1e3:>9.1f}{ac * 1e3:>13.1f}{b * 1e3:>9.1f}{c['batch'] / b:>20.1f}"
              f"{b / a:>12.2f}x{b / ac:>16.2f}x")


if __name__ == "__main__":
    main()
