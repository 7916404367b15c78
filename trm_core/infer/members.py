"""Ensemble members: checkpoints (each with its own config and weights) x input transforms.

Every checkpoint's resolved config is its base; `--set` applies to each of them (what does not
change the weights' shapes: depth, evaluation noise, data.path, device). The puzzles are the first
checkpoint's held-out split (data.eval_split), or a seeded subset of `limit` of them: the same
subset `python -m trm_core eval --limit` and the trainer's periodic evaluations use. Every other
checkpoint must be a model of the same task and board. EMA weights are used when present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from trm_core.checkpoint import checkpoint_config, checkpoint_weights, describe, load_checkpoint
from trm_core.config import TRMConfig
from trm_core.data.load import EvalSet, load_data
from trm_core.errors import UserError
from trm_core.infer.rollout import Members
from trm_core.infer.transforms import Task, Transform
from trm_core.model.trm import TRM, build_model
from trm_core.rng import derive_seed
from trm_core.runtime import (
    autocast_factory,
    forward_dtype,
    resolve_device,
    set_cpu_threads,
)


@dataclass
class Loaded:
    path: str
    cfg: TRMConfig
    model: TRM
    step: int
    weights: str
    """ema | model: which weights were loaded."""

    @property
    def autocast(self):
        return autocast_factory(self.model.h_init.device, self.cfg.train.dtype, self.cfg.train.precision)


def _matrix(weights: dict, key: str) -> torch.Tensor | None:
    value = weights.get(key)
    return value if isinstance(value, torch.Tensor) and value.dim() == 2 else None


def _trained_shape(cfg: TRMConfig, weights: dict) -> tuple[str, int, int | None] | None:
    """(task kind, vocabulary, cells) the checkpoint was trained on, read from its weights where they
    tell (the lm head; the MLP-Mixer's token weights), else from its config; cells None if unknown.
    None when the weights have no lm head matrix (a damaged checkpoint: loading them says what is wrong)."""
    kind = "maze" if cfg.data.task == "maze" else "sudoku"
    head = _matrix(weights, "lm_head.weight")
    if head is None:
        return None
    vocab = int(head.shape[0]) - int(cfg.model.halt_register)  # the HALT class is no puzzle token
    token_mlp = _matrix(weights, "blocks.0.mixer.mlp.gate_up.weight")
    if token_mlp is not None:
        return kind, vocab, int(token_mlp.shape[1]) - int(cfg.model.halt_register) - cfg.model.prefix_len
    return kind, vocab, None if cfg.data.path else cfg.data.board_size ** 2


def _check_shape(path: str, cfg: TRMConfig, weights: dict, task: Task) -> None:
    """The checkpoint must be a model of the puzzles' task, vocabulary and board size."""
    trained = _trained_shape(cfg, weights)
    if trained is None:
        return
    kind, vocab, cells = trained
    if kind != task.kind or vocab != task.vocab or cells not in (None, task.n_cells):
        shape = f"{cells} cells" if cells else "cells unknown"
        raise UserError(f"checkpoint {path} is a {kind} model (vocabulary {vocab}, {shape}), but the puzzles "
                        f"are {task.describe()} (vocabulary {task.vocab}, {task.n_cells} cells): every "
                        f"checkpoint must be of the puzzles' task and board")


def load_members(paths: Sequence[str | os.PathLike], overrides: Sequence[str] = (), limit: int = 0
                 ) -> tuple[list[Loaded], EvalSet, Task]:

    if limit < 0:
        raise UserError(f"--limit must be >= 0 (0: the whole split), but got {limit}")
    if not paths:
        raise UserError("eval needs at least one checkpoint")
    raw = [(str(p), load_checkpoint(p)) for p in paths]
    cfgs = [checkpoint_config(data, path, overrides) for path, data in raw]
    cfg0 = cfgs[0]
    device = resolve_device(cfg0.device)
    set_cpu_threads(device, cfg0.train.cpu_threads)
    cfg0.train.eval_max_puzzles = 0
    d = load_data(cfg0)
    eval_set = d.eval_set.subset(limit, derive_seed(cfg0.data.data_seed, "eval_subset"))
    meta = d.dataset.meta
    task = Task.from_meta(meta)
    loaded = []
    for (path, data), cfg in zip(raw, cfgs):
        weights, which = checkpoint_weights(data)
        _check_shape(path, cfg, weights, task)
        model = build_model(cfg, meta["vocab_size"], meta["seq_len"], int(meta.get("n_puzzle_ids", 1)))
        try:
            model.load_state_dict(weights)
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"checkpoint {path} does not match this config: {describe(exc)}") from None
        model.to(device).eval()
        model.forward_dtype = forward_dtype(device, cfg.train.dtype, cfg.train.precision)
        loaded.append(Loaded(path, cfg, model, int(data["step"]), which))
    return loaded, eval_set, task


def member_inputs(eval_set: EvalSet, transforms: Sequence[Transform], device: torch.device) -> Members:
    """Each transform's view of the puzzles and solutions, and the maps back, on `device`."""

    def stack(arrays) -> torch.Tensor:
        return torch.as_tensor(np.stack(arrays).astype(np.int64), device=device)

    x, y = np.asarray(eval_set.inputs), np.asarray(eval_set.labels)
    return Members(
        inputs=stack([t.apply(x) for t in transforms]), labels=stack([t.apply(y) for t in transforms]),
        puzzle_ids=torch.as_tensor(np.asarray(eval_set.puzzle_ids).astype(np.int64), device=device),
        positions_inv=stack([t.positions_inv for t in transforms]), tokens=stack([t.tokens for t in transforms]),
        tokens_inv=stack([t.tokens_inv for t in transforms]))
