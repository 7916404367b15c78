"""A training session: everything that changes while training, how it is built, saved and restored.

The data it trains on comes from `trm_core.data.load.load_data(cfg)`; `build_session` makes the
model (in the forward dtype train.precision asks for), its EMA, the optimiser recipe, the empty ACT
batch and the run's random streams (trm_core.rng); `checkpoint_payload` / `restore` round-trip it.

Cost counters (reported as `cost/train_s`, `cost/train_flops` at every evaluation, trm_core.metric_keys):
`train_s` (wall seconds inside training steps) and `train_flops` (analytic training FLOPs, `step_flops`)
are cumulative over resumes: the checkpoint payload carries them under the optional keys `train_s`
and `train_flops`. A checkpoint written before they existed still resumes; its counters then start
at 0 at the resumed step (they count from there on), which `restore` accepts without a warning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from trm_core import checkpoint as ckpt
from trm_core.config import TRMConfig, from_dict, to_dict, to_flat_dict
from trm_core.errors import ConfigError, UserError
from trm_core.model.trm import TRM, build_model
from trm_core.rng import Streams
from trm_core.runtime import can_compile, forward_dtype, seed_everything
from trm_core.train.act import ActBatch
from trm_core.train.optim import EMA, OPTIMIZERS, OptimizerList


@dataclass
class Session:
    """Everything that changes while training; a checkpoint saves and restores all of it."""

    cfg: TRMConfig
    device: torch.device
    model: TRM
    ema: Optional[EMA]
    optimizer: OptimizerList
    stream: Any
    batch: ActBatch
    streams: Streams
    """The run's explore / init / noise generators (trm_core.rng)."""
    step: int = 0
    elapsed_s: float = 0.0
    """Wall seconds of this run (over resumes) up to `clock_start`."""
    clock_start: float = 0.0
    train_s: float = 0.0
    """Wall seconds spent in training steps (trm_core.train.loop.train_step), over resumes."""
    train_flops: int = 0
    """Analytic training FLOPs of the steps taken so far (`step_flops` per step), over resumes."""
    _flops_per_depth: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)

    def step_flops(self, n_inner: int, n_outer: int) -> int:
        """Analytic FLOPs of one training step of the whole batch at depth (n, T): its rows (puzzles x
        chains) x `TRM.flops_per_puzzle_step(n, T, training=True)`; cached per depth (CGAR's curriculum
        and randomised depth change it from step to step)."""
        key = (int(n_inner), int(n_outer))
        if key not in self._flops_per_depth:
            rows = int(self.batch.carry.z_h.shape[0])
            self._flops_per_depth[key] = rows * self.model.flops_per_puzzle_step(*key, training=True)
        return self._flops_per_depth[key]

    def count_step(self, seconds: float, n_inner: int, n_outer: int) -> None:
        """Add one training step's cost: its wall seconds and its analytic FLOPs."""
        self.train_s += seconds
        self.train_flops += self.step_flops(n_inner, n_outer)

    def elapsed(self) -> float:
        return self.elapsed_s + time.perf_counter() - self.clock_start

    def sync_clock(self) -> float:
        """Fold the time since clock_start into elapsed_s (before a checkpoint stores it)."""
        self.elapsed_s, self.clock_start = self.elapsed(), time.perf_counter()
        return self.elapsed_s

    @property
    def eval_model(self) -> TRM:
        return self.ema.model if self.ema is not None else self.model


def build_session(cfg: TRMConfig, device: torch.device, dataset, stream) -> Session:
    seed_everything(cfg.seed)
    meta = dataset.meta
    model = build_model(cfg, meta["vocab_size"], meta["seq_len"], int(meta.get("n_puzzle_ids", 1))).to(device)
    model.forward_dtype = forward_dtype(device, cfg.train.dtype, cfg.train.precision)
    ema = EMA(model, cfg.optim.ema_decay, cfg.optim.ema_start_step) if cfg.optim.ema_decay > 0 else None
    if cfg.train.compile and can_compile(device):
        model.compile_f()
        if ema is not None:
            ema.model.compile_f()
    optimizer = OPTIMIZERS.get(cfg.optim.name)(model, cfg.optim)
    batch = ActBatch.empty(model, cfg.train.batch_size, cfg.recursion.chains, device)
    return Session(cfg, device, model, ema, optimizer, stream, batch, Streams.seeded(cfg.seed, device))


def checkpoint_payload(s: Session) -> dict[str, Any]:
    return {
        "step": s.step, "elapsed_s": s.elapsed_s, "train_s": s.train_s, "train_flops": s.train_flops,
        "config": to_dict(s.cfg),
        "model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
        "ema": s.ema.state_dict() if s.ema is not None else None,
        "batch": s.batch.state_dict(s.cfg.train.checkpoint_carry), "stream": s.stream.state_dict(),
        "rng": ckpt.rng_state(s.streams),
    }


SHAPE_KEYS = ("model.", "recursion.chains", "recursion.latent_init")
"""Config keys that decide the shapes of a checkpoint's tensors (or how its buffers were made)."""


def shape_keys_differ(stored: Any, cfg: TRMConfig, source: str) -> None:
    """Refuse a checkpoint whose stored config differs from `cfg` in a key that shapes the model,
    naming every such key (one line) instead of PyTorch's size-mismatch text."""
    if not isinstance(stored, dict):
        return
    try:
        old = to_flat_dict(from_dict(stored))
    except (ConfigError, TypeError, AttributeError):
        return  # an unreadable stored config: the state-dict load below says what does not fit
    new = to_flat_dict(cfg)
    differ = [k for k in new if k.startswith(SHAPE_KEYS) and old.get(k) != new[k]]
    if differ:
        pairs = ", ".join(f"{k}: {old.get(k)!r} in the checkpoint, {new[k]!r} here" for k in differ)
        raise UserError(f"checkpoint {source} was trained with another model: {pairs}")


def restore(s: Session, data: dict[str, Any], source: str) -> None:
    """Load a checkpoint into a freshly built session; a mismatch is a one-line UserError.

    A checkpoint without the batch's latents (train.checkpoint_carry=none) resumes with every
    puzzle halted, so the first step refills the whole batch (TRM's resume).
    """
    shape_keys_differ(data.get("config"), s.cfg, source)
    try:
        s.model.load_state_dict(data["model"])
        s.optimizer.load_state_dict(data["optimizer"])
        if s.ema is not None:
            if data["ema"] is None:
                raise ValueError("the checkpoint has no EMA weights but optim.ema_decay > 0")
            s.ema.load_state_dict(data["ema"])
        if data["batch"]:
            batch = ActBatch.from_state_dict(data["batch"], s.device, s.model.forward_dtype)
            if batch.carry.z_h.shape != s.batch.carry.z_h.shape:
                raise ValueError(f"its batch latents are {tuple(batch.carry.z_h.shape)}, the config's "
                                 f"{tuple(s.batch.carry.z_h.shape)}")
            s.batch = batch
        s.stream.load_state_dict(data["stream"])
        ckpt.set_rng_state(data["rng"], s.streams)
        s.step, s.elapsed_s = int(data["step"]), float(data["elapsed_s"])
        # optional: checkpoints written before the cost counters existed resume with them at 0
        s.train_s, s.train_flops = float(data.get("train_s") or 0.0), int(data.get("train_flops") or 0)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"checkpoint {source} does not match this config: {ckpt.describe(exc)}") from None
