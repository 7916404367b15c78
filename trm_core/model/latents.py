"""The recurrent state (carry) and how it starts: the `LATENT_INITS` registry.

Vocabulary: `z_h` is TRM's z_H (paper: y, the answer state); `z_l` is z_L (paper: z, the reasoning
state). Both have shape (rows, seq, width). `z_l` may hold K chains per puzzle laid out as a
batch of B*K rows (chain k of puzzle b at row b*K + k) sharing the B rows of `z_h`; today K = 1.

A latent initialiser has the signature `init(model, batch_size, generator) -> Carry` and returns
fresh latents for `batch_size` puzzles (random initialisers draw from `generator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import torch

from trm_core.model.registry import Registry

if TYPE_CHECKING:
    from trm_core.model.trm import TRM


@dataclass
class Carry:
    z_h: torch.Tensor
    """Answer state z_H (paper: y), (B, seq, width)."""
    z_l: torch.Tensor
    """Reasoning state z_L (paper: z), (B*K, seq, width)."""

    @property
    def chains(self) -> int:
        """K: z_L chains per puzzle."""
        return self.z_l.shape[0] // self.z_h.shape[0]

    def detach(self) -> "Carry":
        return Carry(self.z_h.detach(), self.z_l.detach())

    def reset_rows(self, mask: torch.Tensor, fresh: "Carry") -> "Carry":
        """Rows of puzzles where `mask` (B,) is True take `fresh`'s latents; the others keep theirs."""
        mask_h = mask.view(-1, 1, 1)
        mask_l = mask.repeat_interleave(self.chains).view(-1, 1, 1)
        return Carry(torch.where(mask_h, fresh.z_h, self.z_h), torch.where(mask_l, fresh.z_l, self.z_l))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"z_h": self.z_h, "z_l": self.z_l}

    @staticmethod
    def from_state_dict(d: dict[str, torch.Tensor]) -> "Carry":
        return Carry(d["z_h"], d["z_l"])


LatentInit = Callable[["TRM", int, Optional[torch.Generator]], Carry]
LATENT_INITS: Registry[LatentInit] = Registry("latent initialiser", "recursion.latent_init")


@LATENT_INITS.register("fixed")
def fixed_init(model: "TRM", batch_size: int, generator: Optional[torch.Generator] = None) -> Carry:
    """TRM: both latents start from fixed buffers (truncated normal, std 1) broadcast over positions."""
    shape = (batch_size, model.seq_len, model.width)
    return Carry(model.h_init.expand(shape).clone(), model.l_init.expand(shape).clone())
