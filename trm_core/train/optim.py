"""Optimisers, learning-rate schedule and weight EMA.

`OPTIMIZERS` maps a recipe name (`optim.name`) to `recipe(model, optim_cfg) -> OptimizerList`.
A recipe builds parameter groups from `model.param_groups()` (hidden 2-D matrices, embeddings,
heads, other, the puzzle-identifier embedding): TRM's Adam-atan2 or AdamW on everything, or SIC's
Muon on the hidden matrices and AdamW on the rest. The puzzle-identifier embedding (when the model
has one) always gets TRM's SignSGD at optim.puzzle_emb_lr. Every group carries `base_lr`; the
schedule scales all of them alike (`set_lr`).
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import torch
from torch import nn

from trm_core.config import OptimConfig
from trm_core.registry import Registry
from trm_core.model.trm import TRM


class AdamAtan2(torch.optim.Optimizer):
    """Adam with atan2 instead of the epsilon division (Everett et al. 2024), as used by TRM.

    Per parameter, as the public CUDA kernel computes it (imoneoi/adam-atan2 @42a1aeb,
    csrc/adam_atan2.cu:47-53 and 77-84), with decoupled weight decay:
        p <- p * (1 - lr * wd)
        m <- beta1 * m + (1 - beta1) * g;   v <- beta2 * v + (1 - beta2) * g^2
        p <- p - (lr / (1 - beta1^t)) * atan2(m, sqrt(v) / sqrt(1 - beta2^t))
    The first bias correction scales the step outside the atan2 (atan2 is not scale-free, so this
    differs from atan2(m / (1 - beta1^t), ...) in the first steps).
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
                p.add_(torch.atan2(exp_avg, denom), alpha=-lr / (1 - beta1**t))
        return loss


class SignSGD(torch.optim.Optimizer):
    """TRM's puzzle-embedding optimiser (its CastedSparseEmbeddingSignSGD), on the rows of the
    identifier table that the batch used (rows with a gradient): decoupled weight decay, then a
    step of -lr * sign(grad). Rows of puzzles absent from the batch are left untouched."""

    def __init__(self, params, lr: float = 1e-4, weight_decay: float = 1.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                used = p.grad.flatten(1).ne(0).any(dim=1)
                update = p.mul(1 - lr * wd).add_(torch.sign(p.grad), alpha=-lr)
                p.copy_(torch.where(used.view(-1, *[1] * (p.ndim - 1)), update, p))


class OptimizerList:
    """Several optimisers stepped as one (e.g. Muon + AdamW + SignSGD), with one state dict."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        states = state["optimizers"]
        if len(states) != len(self.optimizers):
            raise ValueError(f"the checkpoint has {len(states)} optimiser(s), this recipe {len(self.optimizers)}")
        for o, d in zip(self.optimizers, states):
            o.load_state_dict(d)


Recipe = Callable[[TRM, OptimConfig], OptimizerList]
OPTIMIZERS: Registry[Recipe] = Registry("optimiser recipe", "optim.name")


def _group(name: str, params: list, lr: float, weight_decay: float) -> dict:
    # groups keep their role name for logging; base_lr is what the schedule scales
    return {"params": params, "name": name, "lr": lr, "base_lr": lr, "weight_decay": weight_decay}


def _with_puzzle_emb(model: TRM, cfg: OptimConfig, optimizers: list[torch.optim.Optimizer]) -> OptimizerList:
    table = model.param_groups().get("puzzle_emb")
    if table:
        group = _group("puzzle_emb", table, cfg.puzzle_emb_lr, cfg.puzzle_emb_weight_decay)
        optimizers = optimizers + [SignSGD([group], lr=cfg.puzzle_emb_lr, weight_decay=cfg.puzzle_emb_weight_decay)]
    return OptimizerList(optimizers)


def _dense_groups(model: TRM, cfg: OptimConfig, roles: tuple[str, ...] = ("hidden", "embed", "head", "other")) -> list[dict]:
    # TRM decays every dense parameter alike
    return [_group(name, params, cfg.lr, cfg.weight_decay) for name, params in model.param_groups().items()
            if name in roles]


@OPTIMIZERS.register("adamw")
def adamw(model: TRM, cfg: OptimConfig) -> OptimizerList:
    opt = torch.optim.AdamW(_dense_groups(model, cfg), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            weight_decay=cfg.weight_decay, foreach=True)
    return _with_puzzle_emb(model, cfg, [opt])


@OPTIMIZERS.register("adam_atan2")
def adam_atan2(model: TRM, cfg: OptimConfig) -> OptimizerList:
    opt = AdamAtan2(_dense_groups(model, cfg), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    return _with_puzzle_emb(model, cfg, [opt])


@OPTIMIZERS.register("muon_adamw")
def muon_adamw(model: TRM, cfg: OptimConfig) -> OptimizerList:
    """SIC: Muon (optim.muon_*: lr 0.02 scaled by sqrt(max(1, out/in)), momentum 0.6, Nesterov,
    3 Newton-Schulz steps, decoupled wd 0.005) on the 2-D hidden matrices of the blocks; AdamW
    (optim.lr, beta1, beta2, weight_decay: 1e-4, (0.9, 0.95), 1.0) on embeddings, heads and the rest."""
    hidden = model.param_groups()["hidden"]
    muon = torch.optim.Muon([_group("hidden", hidden, cfg.muon_lr, cfg.muon_weight_decay)], lr=cfg.muon_lr,
                            weight_decay=cfg.muon_weight_decay, momentum=cfg.muon_momentum,
                            nesterov=cfg.muon_nesterov, ns_steps=cfg.muon_ns_steps, adjust_lr_fn="original")
    adam = torch.optim.AdamW(_dense_groups(model, cfg, ("embed", "head", "other")), lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, foreach=True)
    return _with_puzzle_emb(model, cfg, [muon, adam])


def lr_factor(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Multiplier of base_lr at optimiser step `step` (0-based): linear warmup, then constant or cosine."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: OptimizerList, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


class EMA:
    """Exponential moving average of the weights, kept in a copy of the model used for evaluation.

    decay_t = min(decay, (1 + t) / (10 + t)): the usual warm-up so that short runs are not
    dominated by the initial weights; after ~10k steps it equals `decay` (TRM's EMA 0.999).
    Before `start_step` optimiser steps the copy just follows the weights (SIC: EMA from step 5k);
    t counts the updates since then. Parameters named in `live` are copied, not averaged: TRM's EMA
    covers its parameters only, and its puzzle-identifier table is a buffer, so its evaluation reads
    the live table (the `puzzle_emb` default).
    """

    def __init__(self, model: nn.Module, decay: float, start_step: int = 0, live: tuple[str, ...] = ("puzzle_emb",)):
        self.decay, self.start_step = decay, start_step
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.live = live
        self._lists: Optional[tuple] = None
        """(model, its parameter lists split by _split), built at the first update."""
        self.updates = 0
        self.seen = 0

    def _split(self, model: nn.Module) -> tuple[list, list, list, list]:
        """(averaged ema, averaged live, copied ema, copied live) parameter lists."""
        ema = dict(self.model.named_parameters())
        avg_e, avg_p, copy_e, copy_p = [], [], [], []
        for name, p in model.named_parameters():
            target = (copy_e, copy_p) if name in self.live else (avg_e, avg_p)
            target[0].append(ema[name])
            target[1].append(p.detach())
        return avg_e, avg_p, copy_e, copy_p

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self._lists is None or self._lists[0] is not model:  # parameters are stable objects: split once
            self._lists = (model, self._split(model))
        avg_e, avg_p, copy_e, copy_p = self._lists[1]
        if copy_e:
            torch._foreach_copy_(copy_e, copy_p)
        self.seen += 1
        if self.seen <= self.start_step:
            torch._foreach_copy_(avg_e, avg_p)
            return
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(avg_e, avg_p, 1 - decay)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates, "seen": self.seen}

    def load_state_dict(self, d: dict) -> None:
        self.model.load_state_dict(d["model"])
        self.updates, self.seen = int(d["updates"]), int(d.get("seen", d["updates"]))
