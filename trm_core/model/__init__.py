"""The TRM network, its carry and the registries of its seams (latent inits, recursion updates)."""

from trm_core.model.latents import LATENT_INITS, Carry
from trm_core.model.trm import RECURSION_UPDATES, TRM, build_model, task_shape

__all__ = ["LATENT_INITS", "RECURSION_UPDATES", "Carry", "TRM", "build_model", "task_shape"]
