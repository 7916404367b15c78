"""Losses of one supervision step: cross entropy on the cells + halt_weight * BCE(q_halt, exact).

Cross entropy is softmax or TRM's "stablemax" (computed in float64), with optional label smoothing.
Everything is computed per row first (`row_losses`); with K chains per puzzle (rows = B*K) the
rows of a puzzle are then reduced: `wta` trains only the winner, the live chain with the lowest
cross entropy (ties: the lowest index), so the losers get exactly zero gradient (SIC,
jvdillon/sic code/experiment.py:801-815 and 826-855); `mean` averages the live chains (the ablation).
With K = 1 both are TRM's loss.

`STEP_WEIGHTINGS` maps `loss.step_weighting` to `weights(steps, n_supervision, cfg) -> (B,)`: the
weight of each puzzle's loss given the (1-based) supervision step that puzzle is at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from trm_core.config import LossConfig
from trm_core.model.outputs import LOG_PROBS
from trm_core.registry import Registry


def cell_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, kind: str, label_smoothing: float) -> torch.Tensor:
    """Per-row mean cross entropy over the cells: logits (R, cells, vocab), labels (R, cells) -> (R,)."""
    logprobs = LOG_PROBS.get(kind)(logits)
    nll = -logprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if label_smoothing > 0:
        # smoothing spreads label_smoothing uniformly over the vocabulary (as F.cross_entropy does)
        nll = (1 - label_smoothing) * nll - label_smoothing * logprobs.mean(dim=-1)
    return nll.mean(dim=-1).float()


StepWeighting = Callable[[torch.Tensor, int, LossConfig], torch.Tensor]
STEP_WEIGHTINGS: Registry[StepWeighting] = Registry("supervision-step weighting", "loss.step_weighting")


@STEP_WEIGHTINGS.register("uniform")
def uniform_weighting(steps: torch.Tensor, n_supervision: int, cfg: LossConfig) -> torch.Tensor:
    """TRM: every supervision step counts the same."""
    return torch.ones(steps.shape, dtype=torch.float32, device=steps.device)


@STEP_WEIGHTINGS.register("cgar_paper")
def cgar_paper_weighting(steps: torch.Tensor, n_supervision: int, cfg: LossConfig) -> torch.Tensor:
    """CGAR's hierarchical supervision weighting as its paper writes it: step t weighs
    lambda^(t-1) / Z with Z = sum_{t=1..N_sup} lambda^(t-1), times N_sup so that a uniform mix of
    steps keeps TRM's loss scale (the mean weight over the N_sup steps is 1)."""
    lam = cfg.step_weight_lambda
    z = sum(lam ** t for t in range(n_supervision))
    return (lam ** (steps.float() - 1)) * (n_supervision / z)


@STEP_WEIGHTINGS.register("cgar_code")
def cgar_code_weighting(steps: torch.Tensor, n_supervision: int, cfg: LossConfig) -> torch.Tensor:
    """CGAR's public code: the whole batch's loss times lambda^floor(mean of the 0-based steps the
    batch's puzzles had taken before this one, read off the incoming carry), one scalar per batch."""
    mean_taken = (steps.float() - 1).mean()
    return torch.full(steps.shape, cfg.step_weight_lambda ** math.floor(float(mean_taken)), device=steps.device)


@dataclass
class RowLoss:
    ce: torch.Tensor
    """(R,) mean cross entropy over the cells."""
    halt: torch.Tensor
    """(R,) BCE of the halt head against exact correctness."""
    cell_correct: torch.Tensor
    """(R,) fraction of cells right (no grad)."""
    exact: torch.Tensor
    """(R,) bool: every cell right."""


def row_losses(logits: torch.Tensor, q_halt: torch.Tensor, labels: torch.Tensor, cfg: LossConfig) -> RowLoss:
    with torch.no_grad():
        correct = logits.argmax(dim=-1) == labels
        exact = correct.all(dim=-1)
    ce = cell_cross_entropy(logits, labels, cfg.kind, cfg.label_smoothing)
    halt = F.binary_cross_entropy_with_logits(q_halt, exact.to(q_halt.dtype), reduction="none")
    return RowLoss(ce, halt, correct.float().mean(dim=-1), exact)


@dataclass
class StepLoss:
    loss: torch.Tensor
    """Scalar to backpropagate."""
    lm_loss: torch.Tensor
    """Mean cross entropy of the trained rows (the winners under wta; detached)."""
    halt_loss: torch.Tensor
    """Mean BCE of the halt head of the trained rows (detached)."""
    cell_correct: torch.Tensor
    """(B,) fraction of cells right, of each puzzle's winning chain."""
    exact: torch.Tensor
    """(B,) bool: the winning chain has every cell right."""
    winner: torch.Tensor
    """(B,) long: the chain with the lowest cross entropy (0 when K = 1)."""
    rows: RowLoss
    """The per-row values, for chain metrics."""


def pick(values: torch.Tensor, winner: torch.Tensor) -> torch.Tensor:
    """(B*K,) per-row values -> (B,) the winner's."""
    return values.view(winner.shape[0], -1).gather(1, winner[:, None]).squeeze(1)


ChainReduction = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
"""(values (B, K), winner (B,), live (B, K) bool or None) -> (B,): one value per puzzle from its chains."""

CHAIN_REDUCTIONS: Registry[ChainReduction] = Registry("chain reduction", "loss.chain_loss")


@CHAIN_REDUCTIONS.register("wta")
def winner_takes_all(values: torch.Tensor, winner: torch.Tensor, live: Optional[torch.Tensor]) -> torch.Tensor:
    """SIC: only the chain with the lowest cross entropy trains (K = 1: the one chain)."""
    return pick(values, winner)


@CHAIN_REDUCTIONS.register("mean")
def mean_over_chains(values: torch.Tensor, winner: torch.Tensor, live: Optional[torch.Tensor]) -> torch.Tensor:
    """Every live chain trains, weighted equally."""
    w = live.float() if live is not None else torch.ones_like(values)
    return (values * (w / w.sum(1, keepdim=True))).sum(1)


def supervision_loss(logits: torch.Tensor, q_halt: torch.Tensor, labels: torch.Tensor, steps: torch.Tensor,
                     n_supervision: int, cfg: LossConfig, alive: Optional[torch.Tensor] = None) -> StepLoss:
    """Loss of one supervision step. logits (B*K, cells, vocab), q_halt (B*K,), labels (B, cells) or
    (B*K, cells), steps (B,) 1-based supervision steps of the B puzzles, alive (B*K,) bool: the chains
    that compete (None: all; every puzzle keeps at least one)."""
    n_puzzles = steps.shape[0]
    chains = logits.shape[0] // n_puzzles
    if labels.shape[0] != logits.shape[0]:
        labels = labels.repeat_interleave(chains, dim=0)
    rows = row_losses(logits, q_halt, labels, cfg)
    per_row = rows.ce + cfg.halt_weight * rows.halt
    live = alive.view(n_puzzles, chains) if alive is not None else None
    ce_for_winner = rows.ce.detach().view(n_puzzles, chains)
    if live is not None:  # a dropped chain never wins (SIC: its loss is inf)
        ce_for_winner = torch.where(live, ce_for_winner, torch.inf)
    winner = ce_for_winner.argmin(dim=1)  # first minimum: ties go to the lowest index
    reduce = CHAIN_REDUCTIONS.get("wta" if chains == 1 else cfg.chain_loss)
    per_puzzle, ce, halt = (reduce(v.view(n_puzzles, chains), winner, live) for v in (per_row, rows.ce, rows.halt))
    weights = STEP_WEIGHTINGS.get(cfg.step_weighting)(steps, n_supervision, cfg)
    loss = (weights * per_puzzle).mean()
    return StepLoss(loss, ce.detach().mean(), halt.detach().mean(), pick(rows.cell_correct, winner),
                    pick(rows.exact, winner), winner, rows)
