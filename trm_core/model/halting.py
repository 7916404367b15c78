"""The halting read-out, one for every reader of the halt head: the trainer's ACT batch, the
trainer's evaluation and the test-time engine. A row halts at its first supervision step with
q_halt > 0 (TRM, SIC and EqR alike); its answer is the one it gives at that step.
"""

from __future__ import annotations

import torch


def halts(q_halt: torch.Tensor) -> torch.Tensor:
    """(R,) bool: the halt head says stop (q_halt > 0)."""
    return q_halt > 0


def first_halts(q_halt: torch.Tensor, halt_step: torch.Tensor, step) -> tuple[torch.Tensor, torch.Tensor]:
    """(newly, halt_step'): the rows that halt for the first time at `step` (a scalar or (R,) steps),
    and halt_step with `step` written for them. halt_step is 0 for a row that has not halted yet."""
    newly = halts(q_halt) & (halt_step == 0)
    return newly, torch.where(newly, step, halt_step)
