"""Optimisers, learning-rate schedule and weight EMA.

`OPTIMIZERS` maps a recipe name (`optim.name`) to `recipe(model, optim_cfg) -> torch.optim.Optimizer`.
A recipe builds parameter groups from `model.param_groups()` (hidden 2-D matrices, embeddings,
heads, other) so that, e.g., Muon on the hidden matrices and AdamW on the rest is one more recipe.
Every group carries `base_lr`; the schedule scales it (`set_lr`).
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

from trm_core.config import OptimConfig
from trm_core.model.registry import Registry
from trm_core.model.trm import TRM


class AdamAtan2(torch.optim.Optimizer):
    """Adam with atan2 instead of the epsilon division (Everett et al. 2024), as used by TRM.

    Per parameter, with decoupled weight decay (definition of the public CUDA package):
        p <- p * (1 - lr * wd)
        m <- beta1 * m + (1 - beta1) * g;   v <- beta2 * v + (1 - beta2) * g^2
        p <- p - lr * atan2(m / (1 - beta1^t), sqrt(v / (1 - beta2^t)))
    """

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"].item()
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - lr * wd)
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = exp_avg_sq.sqrt() / math.sqrt(1 - beta2**t)
                p.add_(torch.atan2(exp_avg / (1 - beta1**t), denom), alpha=-lr)
        return loss


Recipe = Callable[[TRM, OptimConfig], torch.optim.Optimizer]
OPTIMIZERS: Registry[Recipe] = Registry("optimiser recipe", "optim.name")


def _uniform_groups(model: TRM, cfg: OptimConfig) -> list[dict]:
    # TRM decays every parameter alike; groups keep their role name for logging and later recipes
    return [
        {"params": params, "name": name, "lr": cfg.lr, "base_lr": cfg.lr, "weight_decay": cfg.weight_decay}
        for name, params in model.param_groups().items()
    ]


@OPTIMIZERS.register("adamw")
def adamw(model: TRM, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(_uniform_groups(model, cfg), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             weight_decay=cfg.weight_decay, foreach=True)


@OPTIMIZERS.register("adam_atan2")
def adam_atan2(model: TRM, cfg: OptimConfig) -> torch.optim.Optimizer:
    return AdamAtan2(_uniform_groups(model, cfg), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                     weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Multiplier of base_lr at optimiser step `step` (0-based): linear warmup, then constant or cosine."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


class EMA:
    """Exponential moving average of the weights, kept in a copy of the model used for evaluation.

    decay_t = min(decay, (1 + t) / (10 + t)): the usual warm-up so that short runs are not
    dominated by the initial weights; after ~10k steps it equals `decay` (TRM's EMA 0.999).
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1 - decay)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, d: dict) -> None:
        self.model.load_state_dict(d["model"])
        self.updates = int(d["updates"])
