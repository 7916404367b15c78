"""`python -m trm_core eval CHECKPOINT [--set ...] [--limit N]`: evaluate a saved model on its held-out split.

The checkpoint's resolved config is the base; `--set` may change what does not alter the weights'
shapes (e.g. recursion.n_supervision for test-time depth, data.path, device). The whole split is
evaluated, or a seeded subset of `limit` puzzles (the same subset the trainer's periodic
evaluations use for train.eval_max_puzzles = limit). The EMA weights are used when the checkpoint
has them (as the trainer's evaluation does).
"""

from __future__ import annotations

import os
from typing import Sequence

from trm_core.errors import UserError
from trm_core.model.trm import build_model
from trm_core.rng import derive_seed
from trm_core.checkpoint import checkpoint_config, checkpoint_weights, describe, load_checkpoint
from trm_core.data.load import EvalSet
from trm_core.train.evaluate import evaluate
from trm_core.runtime import autocast_factory, forward_dtype, resolve_device, set_cpu_threads
from trm_core.train.schedules import full_depth
from trm_core.data.load import load_data


def evaluate_checkpoint(path: str | os.PathLike, overrides: Sequence[str] = (), limit: int = 0) -> dict:
    if limit < 0:
        raise UserError(f"--limit must be >= 0 (0: the whole split), but got {limit}")
    data = load_checkpoint(path)
    cfg = checkpoint_config(data, path, overrides)
    device = resolve_device(cfg.device)
    set_cpu_threads(device, cfg.train.cpu_threads)
    cfg.train.eval_max_puzzles = 0
    d = load_data(cfg)
    eval_set: EvalSet = d.eval_set.subset(limit, derive_seed(cfg.data.data_seed, "eval_subset"))
    meta = d.dataset.meta
    model = build_model(cfg, meta["vocab_size"], meta["seq_len"], int(meta.get("n_puzzle_ids", 1)))
    weights, which = checkpoint_weights(data)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"checkpoint {path} does not match this config: {describe(exc)}") from None
    model.to(device)
    model.forward_dtype = forward_dtype(device, cfg.train.dtype, cfg.train.precision)
    batch = cfg.train.eval_batch_size or cfg.train.batch_size
    autocast = autocast_factory(device, cfg.train.dtype, cfg.train.precision)
    metrics = evaluate(model, eval_set, full_depth(cfg), batch, device, autocast, cfg.seed)
    return {"step": int(data["step"]), "eval/weights": which, **metrics}
