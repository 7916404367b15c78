"""Evaluation on held-out puzzles: full depth (all N_sup steps, score the last; TRM) and with
halting (each puzzle's answer is the one at its first step with q_halt > 0, or at N_sup; SIC).

Metric keys: eval/exact_acc, eval/cell_acc (full depth, last step); eval/halted_exact_acc,
eval/halted_cell_acc, eval/avg_steps (with halting); eval/halt_acc (over every puzzle and step:
the halt head's verdict q_halt > 0 agrees with exact correctness); eval/n_puzzles.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch

from trm_core.model.trm import TRM
from trm_core.train.schedules import Depth


@torch.no_grad()
def evaluate_batch(model: TRM, inputs: torch.Tensor, labels: torch.Tensor, depth: Depth,
                   autocast: Callable[[], contextlib.AbstractContextManager]) -> dict[str, torch.Tensor]:
    """Sums over one batch: final-step correctness, halted answers, halting steps, halt-head agreement."""
    b = inputs.shape[0]
    carry = model.init_carry(b)
    halted = torch.zeros(b, dtype=torch.bool, device=inputs.device)
    halt_step = torch.full((b,), depth.n_supervision, device=inputs.device)
    halted_cells = torch.zeros(b, device=inputs.device)
    halted_exact = torch.zeros(b, dtype=torch.bool, device=inputs.device)
    halt_agree = torch.zeros((), device=inputs.device)
    for step in range(1, depth.n_supervision + 1):
        with autocast():
            carry, logits, q_halt = model(carry, inputs, depth.n_inner, depth.n_outer)
        correct = logits.argmax(-1) == labels
        cells, exact = correct.float().mean(-1), correct.all(-1)
        halt_agree += ((q_halt > 0) == exact).sum()
        # a row's halted answer is taken at its first step with q_halt > 0, else at the last step
        newly = ~halted & ((q_halt > 0) | (step == depth.n_supervision))
        halt_step = torch.where(newly, step, halt_step)
        halted_cells = torch.where(newly, cells, halted_cells)
        halted_exact = torch.where(newly, exact, halted_exact)
        halted |= newly
    return {"cells": cells.sum(), "exact": exact.sum(), "halted_cells": halted_cells.sum(),
            "halted_exact": halted_exact.sum(), "halt_steps": halt_step.float().sum(), "halt_agree": halt_agree}


def evaluate(model: TRM, inputs: np.ndarray, labels: np.ndarray, depth: Depth, batch_size: int,
             device: torch.device, autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
             ) -> dict[str, float]:
    """Metrics over all puzzles in `inputs`/`labels` ((N, cells) arrays), in batches."""
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    n = len(inputs)
    for start in range(0, n, batch_size):
        x = torch.as_tensor(np.asarray(inputs[start:start + batch_size]), dtype=torch.long, device=device)
        y = torch.as_tensor(np.asarray(labels[start:start + batch_size]), dtype=torch.long, device=device)
        for key, value in evaluate_batch(model, x, y, depth, autocast).items():
            totals[key] = totals.get(key, 0.0) + float(value)
    model.train(was_training)
    n = max(n, 1)
    return {
        "eval/exact_acc": totals["exact"] / n,
        "eval/cell_acc": totals["cells"] / n,
        "eval/halted_exact_acc": totals["halted_exact"] / n,
        "eval/halted_cell_acc": totals["halted_cells"] / n,
        "eval/avg_steps": totals["halt_steps"] / n,
        "eval/halt_acc": totals["halt_agree"] / (n * depth.n_supervision),
        "eval/n_puzzles": float(len(inputs)),
    }
