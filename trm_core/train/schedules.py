"""Recursion depth per training step: `DEPTH_SCHEDULES` maps `recursion.depth_schedule` to
`schedule(cfg, step, total_steps) -> Depth`. The trainer asks for the depth at every optimiser step
and passes it into the model's step, so curricula (e.g. CGAR's progressive depth) and randomised
depth are one more entry here. Evaluation always runs at the configured (full) depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from trm_core.config import TRMConfig
from trm_core.model.registry import Registry


@dataclass(frozen=True)
class Depth:
    n_inner: int
    """n: z_L updates per pass."""
    n_outer: int
    """T: passes per supervision step."""
    n_supervision: int
    """N_sup: supervision steps before a row must halt."""


def full_depth(cfg: TRMConfig) -> Depth:
    r = cfg.recursion
    return Depth(r.n_inner, r.n_outer, r.n_supervision)


DepthSchedule = Callable[[TRMConfig, int, int], Depth]
DEPTH_SCHEDULES: Registry[DepthSchedule] = Registry("depth schedule", "recursion.depth_schedule")


@DEPTH_SCHEDULES.register("constant")
def constant_depth(cfg: TRMConfig, step: int, total_steps: int) -> Depth:
    """TRM: the configured (n, T, N_sup) at every step."""
    return full_depth(cfg)
