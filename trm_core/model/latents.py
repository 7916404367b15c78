"""The recurrent state (carry) and how it starts: the `LATENT_INITS` registry.

Vocabulary: `z_h` is TRM's z_H (paper: y, the answer state); `z_l` is z_L (paper: z, the reasoning
state). Both have shape (rows, seq, width). The model is chain-agnostic: with K parallel chains
per puzzle (SIC) a batch of B puzzles is B*K rows, chain k of puzzle b at row b*K + k, each row
with its own z_H and z_L; what makes the chains share z_H is the carry policy applied after each
step (trm_core.model.chains).

A latent initialiser has the signature `init(model, n_puzzles, chains, generator) -> Carry` and
returns fresh latents for n_puzzles * chains rows. z_H starts alike in every chain of a puzzle
(SIC: one shared z_H); z_L may differ per chain. Random initialisers draw from `generator` only
(the run's `init` stream, trm_core.rng), on the model's device, in the model's forward dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import torch

from trm_core.errors import ConfigError
from trm_core.model.registry import Registry

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


LatentInit = Callable[["TRM", int, int, Optional[torch.Generator]], Carry]
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


def _trunc_normal(rows: int, model: "TRM", std: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """(rows, width) truncated normal (realised std `std`), drawn on the model's device from `generator`."""
    from trm_core.model.layers import trunc_normal

    return trunc_normal((rows, model.width), std, generator, model.h_init.device)


@LATENT_INITS.register("fixed")
def fixed_init(model: "TRM", n_puzzles: int, chains: int = 1, generator: Optional[torch.Generator] = None) -> Carry:
    """TRM: z_H and z_L start from fixed buffers (truncated normal, std 1) broadcast over positions;
    with K chains, chain k's z_L starts from its own buffer l_init[k]."""
    rows = n_puzzles * chains
    return Carry(_fixed_h(model, rows), _broadcast(_chain_buffers(model, n_puzzles, chains), model))


@LATENT_INITS.register("fresh")
def fresh_init(model: "TRM", n_puzzles: int, chains: int = 1, generator: Optional[torch.Generator] = None) -> Carry:
    """SIC: every chain's z_L vector is drawn afresh at each refill (truncated normal, std init_sigma_l),
    broadcast over positions; z_H starts from its fixed buffer."""
    rows = n_puzzles * chains
    z_l = _trunc_normal(rows, model, model.recursion_cfg.init_sigma_l, generator)
    return Carry(_fixed_h(model, rows), _broadcast(z_l, model))


@LATENT_INITS.register("svd_aligned")
def svd_aligned_init(model: "TRM", n_puzzles: int, chains: int = 1, generator: Optional[torch.Generator] = None) -> Carry:
    """SIC's fresh init with chains 1.. rescaled so that each chain's alignment with the top-10 right
    singular vectors of block 0's channel up-projection equals chain 0's (no dead chains)."""
    rows = n_puzzles * chains
    z_l = _trunc_normal(rows, model, model.recursion_cfg.init_sigma_l, generator)
    if chains > 1:
        weight = model.blocks[0].mlp.gate_up.weight.detach().float()
        top = torch.linalg.svd(weight, full_matrices=False).Vh[:10]  # (10, width), orthonormal rows
        z_l = align_to_first_chain(z_l.view(n_puzzles, chains, -1), top).view(rows, -1)
    return Carry(_fixed_h(model, rows), _broadcast(z_l, model))


def align_to_first_chain(v: torch.Tensor, basis: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """v (puzzles, K, width); basis (r, width) orthonormal rows spanning a subspace S.

    The alignment of a vector is |P v| / |v| with P the projection on S. Each chain k >= 1 keeps its
    component outside S and scales its component in S by s so that its alignment equals chain 0's:
    s |P v| / sqrt(s^2 |P v|^2 + |v - P v|^2) = a_0  =>  s = a_0 |v - P v| / (|P v| sqrt(1 - a_0^2)).
    """
    inside = (v @ basis.T) @ basis
    outside = v - inside
    p, q = inside.norm(dim=-1), outside.norm(dim=-1)  # (puzzles, K)
    a0 = (p[:, :1] / (p[:, :1].square() + q[:, :1].square()).sqrt().clamp_min(eps)).clamp(max=1 - 1e-6)
    scale = a0 * q / (p * (1 - a0.square()).sqrt()).clamp_min(eps)
    out = outside + scale[..., None] * inside
    out[:, 0] = v[:, 0]  # chain 0 is the reference, unchanged
    return out


@LATENT_INITS.register("normal")
def normal_init(model: "TRM", n_puzzles: int, chains: int = 1, generator: Optional[torch.Generator] = None) -> Carry:
    """EqR's random init (RI): z_H ~ N(0, sigma_H^2) and z_L ~ N(0, sigma_L^2), i.i.d. per row,
    position and channel; z_H is drawn once per puzzle and shared by its chains."""
    r = model.recursion_cfg
    device, shape = model.h_init.device, (model.seq_len, model.width)
    z_h = torch.randn(n_puzzles, *shape, generator=generator, device=device) * r.init_sigma_h
    z_l = torch.randn(n_puzzles * chains, *shape, generator=generator, device=device) * r.init_sigma_l
    z_h = z_h.repeat_interleave(chains, dim=0) if chains > 1 else z_h
    return Carry(z_h.to(model.forward_dtype), z_l.to(model.forward_dtype))
