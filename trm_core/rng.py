"""Seeded random streams: one generator per purpose, so that changing one knob moves one stream only.

A run's randomness is split by purpose, each stream seeded from (run seed, stream name):
- data: the TrainStream's numpy generator (which puzzles, their augmentation), seeded with the run seed;
- explore: ACT's exploration minimums;
- init: random initial latents (SIC's fresh inits, EqR's random init), drawn only for refilled rows;
- noise: path noise of the damped noisy update (EqR's NI).
So, e.g., a larger init scale changes neither which puzzles are drawn nor the exploration draws.
The torch generators live on the model's device (draws stay on the GPU, no host sync).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any

import torch


def derive_seed(seed: int, name: str) -> int:
    """A 63-bit seed for stream `name` of run seed `seed` (stable across runs and machines)."""
    digest = hashlib.sha256(f"trm_core/{name}/{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(seed, name))


@dataclass
class Streams:
    """The torch streams of one run (training) or one evaluation."""

    explore: torch.Generator
    init: torch.Generator
    noise: torch.Generator

    @staticmethod
    def seeded(seed: int, device: torch.device | str = "cpu", prefix: str = "") -> "Streams":
        """`prefix` separates families of streams, e.g. 'eval/' for evaluation's own draws."""
        return Streams(*(generator(seed, prefix + f.name, device) for f in fields(Streams)))

    def state_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name).get_state() for f in fields(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for f in fields(self):
            getattr(self, f.name).set_state(state[f.name])
