"""The model's output distribution over a cell's tokens, named by `loss.kind`: what the loss trains
and what the test-time engine reads its token probabilities from.

Each entry maps logits (..., vocab) to log-probabilities over the last axis.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from trm_core.registry import Registry

LogProbs = Callable[[torch.Tensor], torch.Tensor]

LOG_PROBS: Registry[LogProbs] = Registry("output distribution", "loss.kind")


@LOG_PROBS.register("stablemax")
def log_stablemax(logits: torch.Tensor) -> torch.Tensor:
    """TRM's stablemax: s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0; log(s / sum s), in float64."""
    x = logits.to(torch.float64)
    s = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    return torch.log(s / s.sum(dim=-1, keepdim=True))


@LOG_PROBS.register("softmax")
def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax (SIC's and EqR's loss), in float32."""
    return F.log_softmax(logits.float(), dim=-1)
