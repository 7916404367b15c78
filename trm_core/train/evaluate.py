"""Evaluation on held-out puzzles: full depth (all N_sup steps, score the last; TRM) and with
halting (each puzzle's answer is the one at its first step with q_halt > 0, or at N_sup; SIC).

Metric keys: eval/exact_acc, eval/cell_acc (full depth, last step); eval/halted_exact_acc,
eval/halted_cell_acc, eval/avg_steps (with halting); eval/halt_acc (over every puzzle and step:
the halt head's verdict q_halt > 0 agrees with exact correctness); eval/n_puzzles.

One chain per puzzle, started as recursion.latent_init says for evaluation (the fixed buffers of
chain 0 for TRM's and SIC's inits, as SIC evaluates from L_init[0]; a draw for EqR's random init),
the evaluation dynamics (recursion.eval_damping, eval_noise_beta), and random latents and noise from
evaluation's own streams seeded with `seed`:
two evaluations of the same weights with the same seed give the same numbers. The test-time engine
(trm_core.infer) scales depth and breadth and ensembles; this is the trainer's yardstick.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch

from trm_core.data.load import EvalSet
from trm_core.model.halting import first_halts, halts
from trm_core.model.trm import TRM, Dynamics
from trm_core.rng import Streams
from trm_core.train.schedules import Depth


@torch.no_grad()
def evaluate_batch(model: TRM, inputs: torch.Tensor, labels: torch.Tensor, depth: Depth,
                   autocast: Callable[[], contextlib.AbstractContextManager], streams: Streams,
                   puzzle_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Sums over one batch: final-step correctness, halted answers, halting steps, halt-head agreement."""
    b = inputs.shape[0]
    dynamics = Dynamics.evaluation(model.recursion_cfg, streams.noise)
    carry = model.eval_carry(b, streams.init)
    halt_step = torch.zeros(b, dtype=torch.long, device=inputs.device)
    halted_cells = torch.zeros(b, device=inputs.device)
    halted_exact = torch.zeros(b, dtype=torch.bool, device=inputs.device)
    halt_agree = torch.zeros((), device=inputs.device)
    for step in range(1, depth.n_supervision + 1):
        with autocast():
            out = model(carry, inputs, depth.n_inner, depth.n_outer, dynamics, puzzle_ids)
            carry, logits, q_halt = out.carry, out.logits, out.q_halt
        correct = logits.argmax(-1) == labels
        cells, exact = correct.float().mean(-1), correct.all(-1)
        halt_agree += (halts(q_halt) == exact).sum()
        newly, halt_step = first_halts(q_halt, halt_step, step)  # the engine's read-out (trm_core.model.halting)
        halted_cells = torch.where(newly, cells, halted_cells)
        halted_exact = torch.where(newly, exact, halted_exact)
    # a row that never halted answers at the last step
    never = halt_step == 0
    halt_step = torch.where(never, depth.n_supervision, halt_step)
    halted_cells = torch.where(never, cells, halted_cells)
    halted_exact = torch.where(never, exact, halted_exact)
    return {"cells": cells.sum(), "exact": exact.sum(), "halted_cells": halted_cells.sum(),
            "halted_exact": halted_exact.sum(), "halt_steps": halt_step.float().sum(), "halt_agree": halt_agree}


def evaluate(model: TRM, data: EvalSet, depth: Depth, batch_size: int, device: torch.device,
             autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext, seed: int = 0,
             prefix: str = "eval/") -> dict[str, float]:
    """Metrics (keys `{prefix}exact_acc`, ...) over every puzzle of `data`, in batches."""
    was_training = model.training
    model.eval()
    streams = Streams.seeded(seed, device, prefix="eval/")
    totals: dict[str, float] = {}
    n = len(data)

    def rows(a: np.ndarray, start: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a[start:start + batch_size]), dtype=torch.long, device=device)

    for start in range(0, n, batch_size):
        x, y, ids = rows(data.inputs, start), rows(data.labels, start), rows(data.puzzle_ids, start)
        for key, value in evaluate_batch(model, x, y, depth, autocast, streams, ids).items():
            totals[key] = totals.get(key, 0.0) + float(value)
    model.train(was_training)
    m = max(n, 1)
    return {
        f"{prefix}exact_acc": totals.get("exact", 0.0) / m,
        f"{prefix}cell_acc": totals.get("cells", 0.0) / m,
        f"{prefix}halted_exact_acc": totals.get("halted_exact", 0.0) / m,
        f"{prefix}halted_cell_acc": totals.get("halted_cells", 0.0) / m,
        f"{prefix}avg_steps": totals.get("halt_steps", 0.0) / m,
        f"{prefix}halt_acc": totals.get("halt_agree", 0.0) / (m * depth.n_supervision),
        f"{prefix}n_puzzles": float(n),
    }
