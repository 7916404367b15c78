"""ACT in training: a full batch of puzzles, each at its own supervision step, each with K chains.

Every optimiser step runs one supervision step on every row (B puzzles x K chains). A puzzle halts
when its winning chain's q_halt > 0 (after its exploration minimum) or when it reaches N_sup (SIC's
code halts on the winner's q_halt too, jvdillon/sic code/experiment.py:528-555); halted puzzles are
refilled with new puzzles from the TrainStream before the next step, with fresh latents drawn for
their K rows only (from the run's `init` stream), so the batch stays full. Exploration (as TRM's
code does it): at every supervision step, each puzzle independently gets, with probability p, a
minimum of U{2..N_sup} steps that it must have had before it may halt. After the backward pass the
carry policies (trm_core.model.chains) sync the chains, and SIC's expunge may drop one chain of a
puzzle that goes on (`alive`): the puzzle continues with its other chains until it halts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from trm_core.config import RecursionConfig
from trm_core.model.chains import CARRY_POLICIES, expunged_chains
from trm_core.model.halting import halts
from trm_core.model.latents import Carry
from trm_core.model.trm import TRM


@dataclass
class ActBatch:
    carry: Carry
    """(B*K rows): chain k of puzzle b at row b*K + k."""
    inputs: torch.Tensor
    """(B, cells) long: the puzzle in each slot."""
    labels: torch.Tensor
    """(B, cells) long: its solution."""
    puzzle_ids: torch.Tensor
    """(B,) long: its puzzle identifier (TRM's puzzle embedding)."""
    steps: torch.Tensor
    """(B,) long: supervision steps this puzzle has had."""
    halted: torch.Tensor
    """(B,) bool: the puzzle is done and is refilled before the next step."""
    alive: torch.Tensor
    """(B*K,) bool: the chain still competes (SIC's expunge drops chains; a refill revives them)."""

    @property
    def chains(self) -> int:
        return self.carry.z_h.shape[0] // self.inputs.shape[0]

    @staticmethod
    def empty(model: TRM, batch_size: int, chains: int, device: torch.device) -> "ActBatch":
        """A batch whose puzzles are all halted, so the first step fills every row."""
        cells = torch.zeros(batch_size, model.n_cells, dtype=torch.long, device=device)
        zeros = torch.zeros(batch_size, dtype=torch.long, device=device)
        latents = torch.zeros(batch_size * chains, model.seq_len, model.width, dtype=model.forward_dtype, device=device)
        alive = torch.ones(batch_size * chains, dtype=torch.bool, device=device)
        return ActBatch(Carry(latents, latents.clone()), cells, cells.clone(), zeros.clone(), zeros, zeros == 0, alive)

    def rows_of(self, puzzles: torch.Tensor) -> torch.Tensor:
        """Row indices (n*K,) of the K chains of `puzzles` (n,)."""
        k = self.chains
        return (puzzles[:, None] * k + torch.arange(k, device=puzzles.device)).reshape(-1)

    def refill(self, model: TRM, stream: Any, generator: Optional[torch.Generator]) -> int:
        """Give every halted puzzle a new puzzle, fresh latents (its rows only) and step 0."""
        idx = self.halted.nonzero().squeeze(1)
        n = idx.numel()
        if n == 0:
            return 0
        inputs, labels, ids = stream.sample(n)
        device = self.inputs.device
        self.inputs = self.inputs.index_copy(0, idx, inputs.to(device))
        self.labels = self.labels.index_copy(0, idx, labels.to(device))
        self.puzzle_ids = self.puzzle_ids.index_copy(0, idx, ids.to(device))
        rows = self.rows_of(idx)
        self.carry = self.carry.replace_rows(rows, model.init_carry(n, self.chains, generator))
        self.alive[rows] = True
        self.steps[idx] = 0
        self.halted[idx] = False
        return n

    def row_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, puzzle_ids) repeated per chain: one row per chain."""
        k = self.chains
        if k == 1:
            return self.inputs, self.puzzle_ids
        return self.inputs.repeat_interleave(k, dim=0), self.puzzle_ids.repeat_interleave(k, dim=0)

    def apply_carry_policies(self, after: Carry, winner: torch.Tensor, r: RecursionConfig) -> None:
        """After the backward pass: recursion.carry_h / carry_l per puzzle, from the carry as the step
        found it (self.carry) and as it left it (`after`)."""
        if self.chains == 1:
            self.carry = after
            return
        before = self.carry
        self.carry = Carry(CARRY_POLICIES.get(r.carry_h)(before.z_h, after.z_h, winner),
                           CARRY_POLICIES.get(r.carry_l)(before.z_l, after.z_l, winner))

    @torch.no_grad()
    def expunge(self, loss: torch.Tensor, threshold: float) -> torch.Tensor:
        """SIC's expunge after halting: each puzzle that goes on drops at most one near-duplicate chain
        (trm_core.model.chains.expunged_chains) given the step's per-row loss; returns how many (a
        tensor, so that no device sync happens here)."""
        if self.chains == 1 or threshold <= 0:
            return torch.zeros((), device=self.alive.device)
        drop = expunged_chains(self.carry.z_l, self.alive, loss, ~self.halted, threshold)
        self.alive &= ~drop
        return drop.sum().float()

    @torch.no_grad()
    def advance(self, q_halt: torch.Tensor, n_supervision: int, exploration_prob: float,
                generator: Optional[torch.Generator]) -> None:
        """After a supervision step: count it and decide which puzzles halt on their (B,) q_halt."""
        self.steps += 1
        min_steps = exploration_minimum(len(q_halt), n_supervision, exploration_prob, generator, q_halt.device)
        may_halt = halts(q_halt) & (self.steps >= min_steps)
        self.halted = (self.steps >= n_supervision) | may_halt

    def state_dict(self, carry: str = "full") -> dict[str, Any]:
        """carry: full (exact resume) | bf16 (half the size) | none (resume refills every puzzle)."""
        if carry == "none":
            return {}
        latents = self.carry if carry == "full" else self.carry.to(torch.bfloat16)
        return {**latents.state_dict(), "inputs": self.inputs, "labels": self.labels, "puzzle_ids": self.puzzle_ids,
                "steps": self.steps, "halted": self.halted, "alive": self.alive}

    @staticmethod
    def from_state_dict(d: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> "ActBatch":
        d = {k: v.to(device) for k, v in d.items()}
        alive = d.get("alive", torch.ones(d["z_h"].shape[0], dtype=torch.bool, device=device))  # older checkpoints
        return ActBatch(Carry.from_state_dict(d).to(dtype), d["inputs"], d["labels"], d["puzzle_ids"], d["steps"],
                        d["halted"], alive)


def exploration_minimum(n: int, n_supervision: int, prob: float, generator: Optional[torch.Generator],
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """(n,) minimum steps: with probability `prob` uniform in 2..N_sup, else 0 (no minimum)."""
    device = generator.device if generator is not None else device
    explore = torch.rand(n, generator=generator, device=device) < prob
    if n_supervision < 2:
        return torch.zeros(n, dtype=torch.long, device=device)
    minimum = torch.randint(2, n_supervision + 1, (n,), generator=generator, device=device)
    return torch.where(explore, minimum, 0)
