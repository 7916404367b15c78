"""K parallel latent chains per puzzle (SIC's winner-take-all): carry policies, expunge, diversity.

Layout (trm_core.model.latents): chain k of puzzle b is row b*K + k. After each supervision step
(after the backward pass) the trainer picks each puzzle's winner (the live chain with the lowest
cross entropy; ties: the lowest index) and applies a carry policy to z_H and to z_L:

`CARRY_POLICIES` maps `recursion.carry_h` / `recursion.carry_l` to
`policy(before (B*K, seq, width), after (B*K, seq, width), winner (B,) long) -> z`, where `before`
is a latent as the step found it and `after` as the step left it:
- copy: the winner's new latent goes to all K chains (SIC's copy_top1, its z_H policy: one shared z_H);
- all: every chain keeps its own new latent (SIC's z_L policy);
- top1: the winner takes its new latent, the other chains keep their state from before the step
  (SIC's top1: "only winner chain's state carried, others frozen").
SIC's ablation (puzzle accuracy): copy/all 97.7, copy/copy 95.9, all/copy 93.7, all/all 90.3.
Public code: jvdillon/sic code/experiment.py:495-524 (copy_top1, all), code/model.py:1950-2016 (top1).

Expunge (`expunged_chains`, SIC's TrainingState.expunge, code/experiment.py:1692-1741): among the
live chains of a puzzle, pairs whose z_L cosine exceeds a threshold; of the chains in such pairs the
one with the highest loss is dropped; at most one per puzzle per step. A dropped chain stays in the
batch (its rows still run, as SIC's padded pool does) but no longer competes, trains or is expunged.
"""

from __future__ import annotations

from typing import Callable

import torch

from trm_core.registry import Registry

CarryPolicy = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
CARRY_POLICIES: Registry[CarryPolicy] = Registry("carry policy", "recursion.carry_h / recursion.carry_l")


def by_chain(z: torch.Tensor, n_puzzles: int) -> torch.Tensor:
    """(B*K, ...) -> (B, K, ...) (a view)."""
    return z.view(n_puzzles, -1, *z.shape[1:])


def winners_of(z: torch.Tensor, winner: torch.Tensor) -> torch.Tensor:
    """(B*K, ...) rows -> (B, ...) the winning chain's row of each puzzle."""
    zb = by_chain(z, winner.shape[0])
    return zb[torch.arange(winner.shape[0], device=z.device), winner]


def winner_mask(winner: torch.Tensor, chains: int) -> torch.Tensor:
    """(B*K,) bool: True at each puzzle's winning row."""
    k = torch.arange(chains, device=winner.device)
    return (k[None, :] == winner[:, None]).reshape(-1)


@CARRY_POLICIES.register("copy")
def copy_policy(before: torch.Tensor, after: torch.Tensor, winner: torch.Tensor) -> torch.Tensor:
    chains = after.shape[0] // winner.shape[0]
    return winners_of(after, winner).repeat_interleave(chains, dim=0)


@CARRY_POLICIES.register("all")
def all_policy(before: torch.Tensor, after: torch.Tensor, winner: torch.Tensor) -> torch.Tensor:
    return after


@CARRY_POLICIES.register("top1")
def top1_policy(before: torch.Tensor, after: torch.Tensor, winner: torch.Tensor) -> torch.Tensor:
    chains = after.shape[0] // winner.shape[0]
    return torch.where(winner_mask(winner, chains).view(-1, 1, 1), after, before)


def pairwise_cosine(z: torch.Tensor, n_puzzles: int) -> torch.Tensor:
    """(B, K, K) cosine similarity between the chains' flattened latents, per puzzle (SIC: z / (|z| + 1e-8))."""
    flat = by_chain(z, n_puzzles).flatten(2).float()
    flat = flat / (flat.norm(dim=-1, keepdim=True) + 1e-8)
    return flat @ flat.transpose(1, 2)


def chain_diversity(z: torch.Tensor, n_puzzles: int) -> torch.Tensor:
    """Mean pairwise cosine of the K chains' latents (lower = more diverse); 1.0 when K = 1."""
    cos = pairwise_cosine(z, n_puzzles)
    k = cos.shape[-1]
    if k == 1:
        return torch.ones((), device=z.device)
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=z.device)
    return cos[:, off_diagonal].mean()


def expunged_chains(z_l: torch.Tensor, alive: torch.Tensor, loss: torch.Tensor, eligible: torch.Tensor,
                    threshold: float) -> torch.Tensor:
    """SIC's expunge: (B*K,) bool, the chains to drop now (at most one per puzzle).

    z_l (B*K, seq, width) the chains' z_L after the carry policy; alive (B*K,) bool; loss (B*K,) the
    step's per-chain loss; eligible (B,) bool, the puzzles that go on (not halted). A puzzle with a
    pair of live chains whose cosine exceeds `threshold` drops, of the chains in such pairs, the one
    with the highest loss (ties: the lowest index).
    """
    n = eligible.shape[0]
    k = z_l.shape[0] // n
    live = alive.view(n, k)
    cos = pairwise_cosine(z_l, n)
    both_live = live[:, :, None] & live[:, None, :]
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=z_l.device)
    close = (cos > threshold) & both_live & off_diagonal  # symmetric
    in_pair = close.any(dim=2)
    has_pair = in_pair.any(dim=1) & eligible
    worst = torch.where(in_pair, loss.view(n, k).float(), -torch.inf).argmax(dim=1)
    drop = (torch.arange(k, device=z_l.device)[None, :] == worst[:, None]) & has_pair[:, None]
    return drop.reshape(-1)
