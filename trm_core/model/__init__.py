"""The TRM network, its carry and the registries of its seams (latent inits, carry policies)."""

from trm_core.model.chains import CARRY_POLICIES
from trm_core.model.latents import LATENT_INITS, Carry
from trm_core.model.trm import TRM, Dynamics, StepOutput, build_model, task_shape

__all__ = ["CARRY_POLICIES", "LATENT_INITS", "Carry", "Dynamics", "StepOutput", "TRM", "build_model", "task_shape"]
