"""Losses of one supervision step: cross entropy on the cells + halt_weight * BCE(q_halt, exact).

Cross entropy is softmax or TRM's "stablemax" (computed in float64), with optional label smoothing.
`STEP_WEIGHTINGS` maps `loss.step_weighting` to `weights(steps, n_supervision) -> (B,)`: the
weight of each row's loss given the (1-based) supervision step that row is at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from trm_core.config import LossConfig
from trm_core.model.registry import Registry


def log_stablemax(logits: torch.Tensor) -> torch.Tensor:
    """TRM's stablemax: s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0; log(s / sum s), in float64."""
    x = logits.to(torch.float64)
    s = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    return torch.log(s / s.sum(dim=-1, keepdim=True))


def cell_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, kind: str, label_smoothing: float) -> torch.Tensor:
    """Per-row mean cross entropy over the cells: logits (B, cells, vocab), labels (B, cells) -> (B,)."""
    if kind == "stablemax":
        logprobs = log_stablemax(logits)
    else:
        logprobs = F.log_softmax(logits.float(), dim=-1)
    nll = -logprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if label_smoothing > 0:
        # smoothing spreads label_smoothing uniformly over the vocabulary (as F.cross_entropy does)
        nll = (1 - label_smoothing) * nll - label_smoothing * logprobs.mean(dim=-1)
    return nll.mean(dim=-1).float()


StepWeighting = Callable[[torch.Tensor, int], torch.Tensor]
STEP_WEIGHTINGS: Registry[StepWeighting] = Registry("supervision-step weighting", "loss.step_weighting")


@STEP_WEIGHTINGS.register("uniform")
def uniform_weighting(steps: torch.Tensor, n_supervision: int) -> torch.Tensor:
    """TRM: every supervision step counts the same."""
    return torch.ones(steps.shape, dtype=torch.float32, device=steps.device)


@dataclass
class StepLoss:
    loss: torch.Tensor
    """Scalar to backpropagate."""
    lm_loss: torch.Tensor
    """Mean cross entropy (detached)."""
    halt_loss: torch.Tensor
    """Mean BCE of the halt head (detached)."""
    cell_correct: torch.Tensor
    """(B,) fraction of cells right."""
    exact: torch.Tensor
    """(B,) bool: every cell right."""


def supervision_loss(logits: torch.Tensor, q_halt: torch.Tensor, labels: torch.Tensor, steps: torch.Tensor,
                     n_supervision: int, cfg: LossConfig) -> StepLoss:
    """Loss of one supervision step over a batch whose rows are at (1-based) steps `steps`."""
    with torch.no_grad():
        correct = logits.argmax(dim=-1) == labels
        exact = correct.all(dim=-1)
    lm = cell_cross_entropy(logits, labels, cfg.kind, cfg.label_smoothing)
    halt = F.binary_cross_entropy_with_logits(q_halt, exact.to(q_halt.dtype), reduction="none")
    weights = STEP_WEIGHTINGS.get(cfg.step_weighting)(steps, n_supervision)
    loss = (weights * (lm + cfg.halt_weight * halt)).mean()
    return StepLoss(loss, lm.detach().mean(), halt.detach().mean(), correct.float().mean(dim=-1), exact)
