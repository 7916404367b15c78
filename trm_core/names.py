"""Every registry name a config holds, checked before any work: an unknown name is one ConfigError
with the registry's choices and a "did you mean" (the registries live beside what they choose)."""

from __future__ import annotations

from trm_core.config import TRMConfig
from trm_core.model.chains import CARRY_POLICIES
from trm_core.model.latents import LATENT_INITS
from trm_core.model.outputs import LOG_PROBS
from trm_core.model.trm import SOLVERS
from trm_core.train.loss import CHAIN_REDUCTIONS, STEP_WEIGHTINGS
from trm_core.train.optim import OPTIMIZERS
from trm_core.train.schedules import DEPTH_SCHEDULES


def check_names(cfg: TRMConfig) -> None:
    """Fail before any work when a registry name in the config is unknown."""
    r = cfg.recursion
    LATENT_INITS.get(r.latent_init)
    CARRY_POLICIES.get(r.carry_h, "recursion.carry_h")
    CARRY_POLICIES.get(r.carry_l, "recursion.carry_l")
    SOLVERS.get(r.solver)
    DEPTH_SCHEDULES.get(r.depth_schedule)
    LOG_PROBS.get(cfg.loss.kind)
    CHAIN_REDUCTIONS.get(cfg.loss.chain_loss)
    STEP_WEIGHTINGS.get(cfg.loss.step_weighting)
    OPTIMIZERS.get(cfg.optim.name)
