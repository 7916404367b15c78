"""Diagnostics of a test-time rollout: is it converging, is it path independent, is selection the bottleneck?

- Residual traces: mean ||f(z_H) - z_H|| and logit change per step, and full traces of a few rows.
- Halting: histogram of first-halt steps, and the exact accuracy of the answers at each halt step.
- Path independence (EqR): Delta_PI(B) = E_x |Acc_B(x) - Acc_1(x)|, Acc_B(x) the mean exactness
  over restarts 0..B-1 of one (checkpoint, transform) member family, Acc_1(x) that of restart 0;
  averaged over puzzles and families.
- Asymptotic Alignment Score (seed 002): roll out from the first rollout's final latents (z_H and
  z_L) for the same depth and compare: cosine similarity of the final z_H (y) and z_L (z) of the two
  runs, and how often they predict the same answer. Near 1: different starts reach the same point.
- Selection failures: of the puzzles a rule gets wrong, the share the oracle gets right (some
  member had the answer; the rule did not pick it).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from trm_core.infer.rollout import Record
from trm_core.infer.selection import View
from trm_core.infer.views import member_exact
from trm_core.model.latents import Carry


def _nan_to_none(values) -> list:
    return [None if (v is None or (isinstance(v, float) and not math.isfinite(v))) else v for v in values]


def delta_pi(view: View, breadth: int) -> float:
    """Delta_PI(breadth) over the view's member families (each `breadth` restarts)."""
    exact = member_exact(view).float()
    p, m = exact.shape
    fam = exact.reshape(p, m // breadth, breadth)
    return float((fam.mean(-1) - fam[..., 0]).abs().mean())


def member_average(view: View) -> float:
    """EqR's averaged exact accuracy: the mean over members of their exactness."""
    return float(member_exact(view).float().mean())


def per_checkpoint(view: View, n_checkpoints: int) -> list[float]:
    """Each checkpoint's first member alone (first transform, restart 0): single-model accuracy."""
    exact = member_exact(view).float()
    per = exact.shape[1] // n_checkpoints
    return [float(exact[:, c * per].mean()) for c in range(n_checkpoints)]


def selection_failure_share(rule_exact: torch.Tensor, oracle_exact: torch.Tensor) -> float:
    wrong = ~rule_exact
    if not bool(wrong.any()):
        return 0.0
    return float((oracle_exact & wrong).sum()) / float(wrong.sum())


def halting(records: Sequence[Record], labels: torch.Tensor) -> dict:
    """First-halt histogram over every row of every checkpoint, and exactness at each halt step."""
    depth = records[0].depth
    counts = torch.zeros(depth + 1)
    right = torch.zeros(depth + 1)
    for rec in records:
        p = torch.arange(rec.layout.n_rows) % rec.layout.n_puzzles
        exact = (rec.halted.pred.long() == labels[p]).all(-1).float()
        step = rec.halt_step.long()
        counts.index_add_(0, step, torch.ones_like(exact))
        right.index_add_(0, step, torch.where(step > 0, exact, torch.zeros_like(exact)))
    acc = torch.where(counts > 0, right / counts.clamp_min(1), float("nan"))
    return {"never": int(counts[0]), "counts": [int(c) for c in counts[1:]],
            "exact_acc_by_step": _nan_to_none([float(a) for a in acc[1:]])}


def step_curves(records: Sequence[Record]) -> dict:
    """Per step: every checkpoint's first member's exact accuracy (rows still running), and over all
    running rows: exact accuracy, mean latent residual of one outer iteration (the carry's change),
    mean logit change (per-cell L2, averaged over cells), share with q_halt > 0."""
    tot = {k: sum(rec.stats[k].sum(1) for rec in records) for k in ("active", "exact", "residual", "logit_residual", "halting")}
    active = tot["active"].clamp_min(1)
    logit_rows = tot["active"].clone()
    logit_rows[0] = 0  # no logit change at step 1
    out = {
        "exact_acc": _nan_to_none([float(x) for x in tot["exact"] / active]),
        "residual": _nan_to_none([float(x) for x in tot["residual"] / active]),
        "logit_residual": _nan_to_none([float(x) if n > 0 else None for x, n in
                                        zip(tot["logit_residual"] / logit_rows.clamp_min(1), logit_rows)]),
        "halting_share": _nan_to_none([float(x) for x in tot["halting"] / active]),
        "active_rows": [int(x) for x in tot["active"]],
        "first_member_exact_acc": [
            _nan_to_none([float(e / a) if a > 0 else float("nan") for e, a in zip(rec.stats["exact"][:, 0], rec.stats["active"][:, 0])])
            for rec in records],
    }
    return out


def traces(records: Sequence[Record], limit: int = 32) -> dict:
    """Full residual traces of the first rows of the first checkpoint (transform 0, restart 0)."""
    rec = records[0]
    res, ex = rec.trace_residual[:limit], rec.trace_exact[:limit]
    return {"residual": [_nan_to_none([float(v) for v in row]) for row in res],
            "exact": [_nan_to_none([float(v) for v in row]) for row in ex]}


def alignment(first: Carry, second: Carry, pred_first: torch.Tensor, pred_second: torch.Tensor) -> dict:
    """Asymptotic Alignment Score: the second rollout started from the first's final latents."""

    def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.flatten(1).float(), b.flatten(1).float()
        return float(torch.nn.functional.cosine_similarity(a, b, dim=1).mean())

    same = pred_first == pred_second
    return {"z_h_cosine": cosine(first.z_h, second.z_h), "z_l_cosine": cosine(first.z_l, second.z_l),
            "same_answer": float(same.all(-1).float().mean()), "same_cells": float(same.float().mean())}
