"""ACT in training: a full batch of puzzles, each at its own supervision step.

Every optimiser step runs one supervision step on every row. A row halts when q_halt > 0 (after
its exploration minimum) or when it reaches N_sup; halted rows are refilled with new puzzles from
the TrainStream (and fresh latents) before the next step, so the batch stays full.
Exploration (as TRM's code does it): at every supervision step, each row independently gets, with
probability p, a minimum of U{2..N_sup} steps that it must have had before it may halt on q_halt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trm_core.model.latents import Carry
from trm_core.model.trm import TRM


@dataclass
class ActBatch:
    carry: Carry
    inputs: torch.Tensor
    """(B, cells) long: the puzzle in each row."""
    labels: torch.Tensor
    """(B, cells) long: its solution."""
    steps: torch.Tensor
    """(B,) long: supervision steps this puzzle has had."""
    halted: torch.Tensor
    """(B,) bool: the row is done and is refilled before the next step."""

    @staticmethod
    def empty(model: TRM, batch_size: int, device: torch.device) -> "ActBatch":
        """A batch whose rows are all halted, so the first step fills every row."""
        cells = torch.zeros(batch_size, model.n_cells, dtype=torch.long, device=device)
        zeros = torch.zeros(batch_size, dtype=torch.long, device=device)
        return ActBatch(model.init_carry(batch_size), cells, cells.clone(), zeros, zeros == 0)

    def refill(self, model: TRM, stream: Any, generator: torch.Generator) -> int:
        """Give every halted row a new puzzle, fresh latents and step 0."""
        rows = self.halted.nonzero().squeeze(1)
        n = rows.numel()
        if n == 0:
            return 0
        inputs, labels = stream.sample(n)
        device = self.inputs.device
        self.inputs[rows] = inputs.to(device)
        self.labels[rows] = labels.to(device)
        self.carry = self.carry.reset_rows(self.halted, model.init_carry(self.inputs.shape[0], generator))
        self.steps[rows] = 0
        self.halted[rows] = False
        return n

    @torch.no_grad()
    def advance(self, q_halt: torch.Tensor, n_supervision: int, exploration_prob: float,
                generator: torch.Generator) -> None:
        """After a supervision step: count it and decide which rows halt (exploration redrawn each step)."""
        self.steps += 1
        min_steps = exploration_minimum(len(q_halt), n_supervision, exploration_prob, generator).to(q_halt.device)
        may_halt = (q_halt > 0) & (self.steps >= min_steps)
        self.halted = (self.steps >= n_supervision) | may_halt

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**self.carry.state_dict(), "inputs": self.inputs, "labels": self.labels, "steps": self.steps,
                "halted": self.halted}

    @staticmethod
    def from_state_dict(d: dict[str, torch.Tensor], device: torch.device) -> "ActBatch":
        d = {k: v.to(device) for k, v in d.items()}
        return ActBatch(Carry.from_state_dict(d), d["inputs"], d["labels"], d["steps"], d["halted"])


def exploration_minimum(n: int, n_supervision: int, prob: float, generator: torch.Generator) -> torch.Tensor:
    """(n,) minimum steps: with probability `prob` uniform in 2..N_sup, else 0 (no minimum)."""
    explore = torch.rand(n, generator=generator) < prob
    if n_supervision < 2:
        return torch.zeros(n, dtype=torch.long)
    minimum = torch.randint(2, n_supervision + 1, (n,), generator=generator)
    return torch.where(explore, minimum, 0)
