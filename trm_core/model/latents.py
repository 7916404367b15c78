"""The recurrent state (carry) and how it starts: the `LATENT_INITS` registry.

Vocabulary: `z_h` is TRM's z_H (paper: y, the answer state); `z_l` is z_L (paper: z, the reasoning
state). Both have shape (rows, seq, width). The model is chain-agnostic: with K parallel chains
per puzzle (SIC) a batch of B puzzles is B*K rows, chain k of puzzle b at row b*K + k, each row
with its own z_H and z_L; what makes the chains share z_H is the carry policy applied after each
step (trm_core.model.chains).

A latent initialiser (`LatentInit`) says how training starts the latents of a refilled puzzle,
`init(model, n_puzzles, chains, generator) -> Carry` for n_puzzles * chains rows, and how
evaluation starts one chain, `init.evaluation(model, n_rows, generator) -> Carry`. z_H starts alike
in every chain of a puzzle (SIC: one shared z_H); z_L may differ per chain. Random initialisers
draw from `generator` only (the run's `init` stream, trm_core.rng), on the model's device, in the
model's forward dtype; `random` says whether an initialiser draws at all.

Public code these follow (file:line at the commits docs/METHODS.md names): TRM's fixed buffers;
SIC's fresh and SVD-aligned inits (jvdillon/sic code/model.py:1433-1492, 1807-1890) and its
evaluation start from L_init[0] (code/experiment.py:1542-1546); EqR's random init, a truncated
normal at +-2 sigma per position (locuslab/EqR models/eqr.py:157-172, models/common/__init__.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import torch

from trm_core.errors import ConfigError
from trm_core.model.layers import trunc_normal
from trm_core.registry import Registry

if TYPE_CHECKING:
    from trm_core.model.trm import TRM


@dataclass
class Carry:
    z_h: torch.Tensor
    """Answer state z_H (paper: y), (rows, seq, width)."""
    z_l: torch.Tensor
    """Reasoning state z_L (paper: z), (rows, seq, width)."""

    def detach(self) -> "Carry":
        return Carry(self.z_h.detach(), self.z_l.detach())

    def replace_rows(self, rows: torch.Tensor, fresh: "Carry") -> "Carry":
        """Rows `rows` (long, (n,)) take `fresh`'s n rows; the others keep theirs (out of place)."""
        return Carry(self.z_h.index_copy(0, rows, fresh.z_h), self.z_l.index_copy(0, rows, fresh.z_l))

    def reset_rows(self, mask: torch.Tensor, fresh: "Carry") -> "Carry":
        """Rows where `mask` (rows,) is True take `fresh`'s latents (same shape); the others keep theirs."""
        m = mask.view(-1, 1, 1)
        return Carry(torch.where(m, fresh.z_h, self.z_h), torch.where(m, fresh.z_l, self.z_l))

    def to(self, dtype: torch.dtype) -> "Carry":
        return Carry(self.z_h.to(dtype), self.z_l.to(dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"z_h": self.z_h, "z_l": self.z_l}

    @staticmethod
    def from_state_dict(d: dict[str, torch.Tensor]) -> "Carry":
        return Carry(d["z_h"], d["z_l"])


Draw = Callable[["TRM", int, int, Optional[torch.Generator]], Carry]
StartEval = Callable[["TRM", int, Optional[torch.Generator]], Carry]


@dataclass(frozen=True)
class LatentInit:
    """One way of starting the latents: `init(model, n_puzzles, chains, generator)` in training,
    `init.evaluation(model, rows, generator)` in evaluation, `init.prepare(model)` once at build."""

    draw: Draw
    """Training: fresh latents for n_puzzles * chains rows (chain k of puzzle b at row b*K + k)."""
    evaluation: StartEval
    """Evaluation: latents for `rows` single-chain rows (the trainer's evaluation; restart 0 of the
    test-time engine)."""
    random: bool
    """Whether draw or evaluation read the generator (the test-time engine then gives rows their own)."""
    prepare: Optional[Callable[["TRM"], None]] = None
    """Run once when the model is built (e.g. aligning the fixed buffers with the initial weights)."""

    def __call__(self, model: "TRM", n_puzzles: int, chains: int = 1,
                 generator: Optional[torch.Generator] = None) -> Carry:
        return self.draw(model, n_puzzles, chains, generator)


LATENT_INITS: Registry[LatentInit] = Registry("latent initialiser", "recursion.latent_init")


def _broadcast(vectors: torch.Tensor, model: "TRM") -> torch.Tensor:
    """(rows, width) -> (rows, seq, width): one vector per row, repeated over positions (TRM)."""
    return vectors[:, None, :].expand(-1, model.seq_len, -1).to(model.forward_dtype).contiguous()


def _fixed_h(model: "TRM", rows: int) -> torch.Tensor:
    return _broadcast(model.h_init.expand(rows, -1), model)


def _chain_buffers(model: "TRM", n_puzzles: int, chains: int) -> torch.Tensor:
    if chains > model.l_init.shape[0]:
        raise ConfigError(f"the model has {model.l_init.shape[0]} z_L init buffer(s) (recursion.chains), "
                          f"but {chains} chains were asked for")
    return model.l_init[:chains].repeat(n_puzzles, 1)


def _trunc_normal(shape: tuple[int, ...], model: "TRM", std: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """A truncated normal at +-2 sigma whose realised std is `std` (TRM's, SIC's and EqR's
    trunc_normal_init_), drawn on the model's device from `generator`."""
    return trunc_normal(shape, std, generator, model.h_init.device)


def _buffers(model: "TRM", n_puzzles: int, chains: int = 1, generator: Optional[torch.Generator] = None) -> Carry:
    rows = n_puzzles * chains
    return Carry(_fixed_h(model, rows), _broadcast(_chain_buffers(model, n_puzzles, chains), model))


def _buffers_for_evaluation(model: "TRM", rows: int, generator: Optional[torch.Generator] = None) -> Carry:
    """z_H's buffer and chain 0's z_L buffer: SIC's evaluation start (H_init[0], L_init[0]) and TRM's."""
    return _buffers(model, rows, 1)


def align_chains_like_first(z: torch.Tensor, basis: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """SIC's SVD alignment (code/model.py:1807-1843 for vectors, 1845-1890 per position).

    z (..., K, width); basis (r, width) orthonormal rows (the top right singular vectors of block 0's
    channel up-projection). a = |basis r / |r|| is chain 0's alignment; every chain k >= 1 keeps its
    component outside the span, rescales its component inside to norm sqrt(a^2 |perp|^2 / (1 - a^2)),
    so that its alignment is a too, and is then rescaled to its original norm. Chain 0 is unchanged.
    """
    ref, rest = z[..., :1, :], z[..., 1:, :]
    a = (ref / (ref.norm(dim=-1, keepdim=True) + eps) @ basis.T).norm(dim=-1, keepdim=True)
    parallel = (rest @ basis.T) @ basis
    perp = rest - parallel
    target = (a.square() * perp.square().sum(-1, keepdim=True) / (1 - a.square() + eps)).sqrt()
    norm = parallel.norm(dim=-1, keepdim=True)
    parallel = torch.where(norm > eps, parallel / (norm + eps) * target, parallel)
    new = parallel + perp
    new = new / (new.norm(dim=-1, keepdim=True) + eps) * rest.norm(dim=-1, keepdim=True)
    return torch.cat([ref, new], dim=-2)


def _top_singular_directions(model: "TRM", k: int = 10) -> torch.Tensor:
    """(k, width): the top right singular vectors of block 0's channel up-projection (SIC: up_proj)."""
    weight = model.blocks[0].mlp.gate_up.weight.detach().float()
    return torch.linalg.svd(weight, full_matrices=False).Vh[:k]


def _align_buffers(model: "TRM") -> None:
    """fixed_svd_aligned: align the z_L buffers of chains 1.. once, with the initial weights (SIC)."""
    if model.l_init.shape[0] > 1:
        with torch.no_grad():
            model.l_init.copy_(align_chains_like_first(model.l_init.float(), _top_singular_directions(model)))


def _fresh_z_l(model: "TRM", n_puzzles: int, chains: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """(n_puzzles * chains, seq, width) z_L drawn i.i.d. per row, position and channel (SIC's
    z_L_random_init: trunc_normal_init_(std 1) of shape [B, N, S, C], code/model.py:1465-1475)."""
    shape = (n_puzzles * chains, model.seq_len, model.width)
    return _trunc_normal(shape, model, model.recursion_cfg.init_sigma_l, generator)


def _fresh(model: "TRM", n_puzzles: int, chains: int = 1, generator: Optional[torch.Generator] = None) -> Carry:
    """SIC's fresh init: z_L drawn per position at every refill; z_H from its fixed buffer."""
    z_l = _fresh_z_l(model, n_puzzles, chains, generator)
    return Carry(_fixed_h(model, z_l.shape[0]), z_l.to(model.forward_dtype))


def _svd_aligned(model: "TRM", n_puzzles: int, chains: int = 1, generator: Optional[torch.Generator] = None) -> Carry:
    """SIC's headline init: fresh, then at every position chains 1.. aligned like chain 0 with the
    current block-0 up-projection (its _apply_svd_alignment_batched)."""
    z_l = _fresh_z_l(model, n_puzzles, chains, generator)
    if chains > 1:
        by_position = z_l.view(n_puzzles, chains, model.seq_len, -1).transpose(1, 2)  # (n, seq, K, width)
        aligned = align_chains_like_first(by_position, _top_singular_directions(model))
        z_l = aligned.transpose(1, 2).reshape(z_l.shape)
    return Carry(_fixed_h(model, z_l.shape[0]), z_l.to(model.forward_dtype))


def _normal(model: "TRM", n_puzzles: int, chains: int = 1, generator: Optional[torch.Generator] = None) -> Carry:
    """EqR's random init (RI): z_H and z_L truncated normal at +-2 sigma (stds init_sigma_h,
    init_sigma_l) i.i.d. per row, position and channel; z_H drawn once per puzzle, shared by its chains."""
    r = model.recursion_cfg
    shape = (model.seq_len, model.width)
    z_h = _trunc_normal((n_puzzles, *shape), model, r.init_sigma_h, generator)
    z_l = _trunc_normal((n_puzzles * chains, *shape), model, r.init_sigma_l, generator)
    z_h = z_h.repeat_interleave(chains, dim=0) if chains > 1 else z_h
    return Carry(z_h.to(model.forward_dtype), z_l.to(model.forward_dtype))


def _normal_for_evaluation(model: "TRM", rows: int, generator: Optional[torch.Generator] = None) -> Carry:
    """EqR draws its random init at evaluation too (models/eqr.py:157-172 runs in eval mode)."""
    return _normal(model, rows, 1, generator)


# TRM: z_H and z_L from fixed buffers (truncated normal, std 1) broadcast over positions; with K
# chains, chain k's z_L starts from its own buffer l_init[k].
LATENT_INITS.register("fixed")(LatentInit(_buffers, _buffers_for_evaluation, random=False))
# SIC's fixed-init ablation (96.80% against fresh 96.85%): the same buffers, chains 1.. aligned once.
LATENT_INITS.register("fixed_svd_aligned")(
    LatentInit(_buffers, _buffers_for_evaluation, random=False, prepare=_align_buffers))
LATENT_INITS.register("fresh")(LatentInit(_fresh, _buffers_for_evaluation, random=True))
LATENT_INITS.register("svd_aligned")(LatentInit(_svd_aligned, _buffers_for_evaluation, random=True))
LATENT_INITS.register("normal")(LatentInit(_normal, _normal_for_evaluation, random=True))
