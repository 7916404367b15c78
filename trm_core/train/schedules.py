"""Recursion depth per training step: `DEPTH_SCHEDULES` maps `recursion.depth_schedule` to
`schedule(cfg, step, total_steps) -> Depth`. The trainer asks for the depth at every optimiser step
and passes it into the model's step, so curricula (e.g. CGAR's progressive depth) and randomised
depth are one more entry here. Evaluation always runs at the configured (full) depth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from trm_core.config import TRMConfig, parse_stages
from trm_core.registry import Registry
from trm_core.rng import derive_seed


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


@DEPTH_SCHEDULES.register("cgar")
def cgar_depth(cfg: TRMConfig, step: int, total_steps: int) -> Depth:
    """CGAR's progressive depth curriculum: (n, T) of the last stage of recursion.cgar_stages whose
    start is <= step / total_steps (default (2,1) -> (4,2) -> (6,3) at 0.3 / 0.6); N_sup unchanged."""
    progress = step / max(total_steps, 1)
    _, n, t = [s for s in parse_stages(cfg.recursion.cgar_stages) if s[0] <= progress][-1]
    return Depth(n, t, cfg.recursion.n_supervision)


def _centred(rng: random.Random, value: int, spread: int) -> int:
    s = min(spread, value - 1)  # keep the range >= 1 and centred on value
    return rng.randint(value - s, value + s)


@DEPTH_SCHEDULES.register("random")
def random_depth(cfg: TRMConfig, step: int, total_steps: int) -> Depth:
    """Randomised recursion (seed 002): n, T and N_sup each drawn uniformly in value +- its own spread
    (recursion.random_spread_n / _t / _nsup; 0 keeps a knob fixed), independently, per optimiser step.
    The blog varies one knob at a time; its best is T alone (the defaults). Centred ranges give
    E[n] = n, E[T] = T, so the expected compute of a step, T * (n + 1), equals the configured
    depth's. The draw is a function of (seed, step), so a resumed run draws the same depths."""
    r = cfg.recursion
    rng = random.Random(derive_seed(cfg.seed, f"depth/{step}"))
    return Depth(_centred(rng, r.n_inner, r.random_spread_n), _centred(rng, r.n_outer, r.random_spread_t),
                 _centred(rng, r.n_supervision, r.random_spread_nsup))
