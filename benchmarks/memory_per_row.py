"""GPU memory a training step needs, counted on the CPU: what fractional-GPU trial sizes rest on.

    python benchmarks/memory_per_row.py [--presets sudoku_extreme_trm,sudoku_extreme_sic,...] [--rows 4]

For each preset, one real training step's forward runs under `saved_tensors_hooks`, which sums the
bytes of every tensor autograd keeps for the backward pass (the activations of the last pass,
the heads and the loss), at the preset's precision (bf16 under train.precision=reference). Dividing
by the rows gives bytes per row; adding weights, gradients, optimiser state and the EMA copy, and
the carry, gives the memory of a batch in eager PyTorch. Not counted: allocator fragmentation,
temporary buffers of kernels (attention, matmul workspaces) and CUDA's context (~0.5-1 GiB).

Eager is an upper bound: torch.compile (train.compile=true) fuses the elementwise work and keeps
far fewer activations. No GPU was available to measure that, so the "compiled" columns are
calibrated on the one published figure: SIC's K = 4 recipe (192 x 4 = 768 rows, nL = 9) uses
30 GiB on an RTX 5090. The ratio of that figure to this script's eager count for the same recipe
scales every preset's eager count; "fits in" adds 25% + 1 GiB of headroom to the compiled estimate.
Checked against a GPU when one is available (`--cuda`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trm_core.config import load_config  # noqa: E402
from trm_core.model.trm import Dynamics, build_model, task_shape  # noqa: E402
from trm_core.train.loss import supervision_loss  # noqa: E402
from trm_core.train.optim import OPTIMIZERS  # noqa: E402

GIB = 1024**3


def activation_bytes(preset: str, rows: int, device: str) -> tuple[float, float, float]:
    """(activation bytes per row, static bytes: weights+grads+optimiser+EMA, carry bytes per row)."""
    cfg = load_config(preset, ["train.dtype=bfloat16"])
    vocab, cells = task_shape(cfg.data)
    model = build_model(cfg, vocab, cells).to(device)
    precision_bf16 = cfg.train.precision == "reference"
    model.forward_dtype = torch.bfloat16 if precision_bf16 else torch.float32
    chains = 1
    x = torch.randint(1, vocab, (rows, cells), device=device)
    labels = torch.randint(2, vocab, (rows, cells), device=device)
    carry = model.init_carry(rows, chains)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        # views of one storage (chunks, transposes) and tensors saved twice are counted once
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    ctx = torch.autocast(device, dtype=torch.bfloat16) if not precision_bf16 else torch.autocast(device, enabled=False)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), ctx:
        r = cfg.recursion
        out = model(carry, x, r.n_inner, r.n_outer, Dynamics.training(r))
        loss = supervision_loss(out.logits, out.q_halt, labels, torch.ones(rows, dtype=torch.long, device=device),
                                r.n_supervision, cfg.loss)
    per_row = sum(saved.values()) / rows
    params = sum(p.numel() for p in model.parameters())
    # fp32 weights + grads + EMA copy + optimiser state (2 moments for Adam-type; Muon keeps 1)
    static = params * 4 * (3 + 2)
    carry_row = 2 * model.seq_len * model.width * (2 if precision_bf16 else 4)
    del loss
    return per_row, static, carry_row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="sudoku_extreme_trm,sudoku_extreme_sic,sudoku_extreme_wta,sudoku_extreme_eqr,"
                                         "maze_hard_trm")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--gpu-gib", type=float, default=32.0, help="card memory (RTX 5090: 32)")
    ap.add_argument("--cuda", action="store_true", help="also measure the real peak on a CUDA GPU")
    args = ap.parse_args()
    wta_row, wta_static, wta_carry = activation_bytes("sudoku_extreme_wta", args.rows, "cpu")
    ratio = (30 * GIB - wta_static) / (768 * (wta_row + wta_carry))  # SIC: 30 GiB for 768 rows
    print(f"compiled / eager activation ratio calibrated on SIC's 30 GiB (K = 4, 768 rows): {ratio:.2f}")
    print(f"{'preset':<22}{'rows/batch':>11}{'eager MiB/row':>15}{'eager GiB':>11}{'compiled GiB':>14}"
          f"{'fits in':>10}{'rows in 0.25 / 0.5 GPU':>24}")
    for preset in args.presets.split(","):
        cfg = load_config(preset)
        rows = cfg.train.batch_size * cfg.recursion.chains
        per_row, static, carry_row = activation_bytes(preset, args.rows, "cpu")
        eager = (per_row + carry_row) * rows + static
        compiled_row = (per_row + carry_row) * ratio
        compiled = compiled_row * rows + static
        fraction = next((f for f in (0.25, 0.5, 1.0) if compiled * 1.25 + GIB <= f * args.gpu_gib * GIB), None)
        where = f"{fraction:g} GPU" if fraction else "> 1 GPU"
        fit = [int(((f * args.gpu_gib * GIB - GIB) / 1.25 - static) // compiled_row) for f in (0.25, 0.5)]
        print(f"{preset:<22}{rows:>11}{per_row / 2**20:>15.1f}{eager / GIB:>11.1f}{compiled / GIB:>14.1f}"
              f"{where:>10}{fit[0]:>12} / {fit[1]:<10}")
        if args.cuda and torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            per_row_gpu, _, _ = activation_bytes(preset, args.rows, "cuda")
            print(f"{'':<22}cuda: saved tensors {per_row_gpu / 2**20:.1f} MiB/row, peak "
                  f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB for {args.rows} rows")


if __name__ == "__main__":
    main()
