"""`python -m trm_core eval CHECKPOINT [--set ...]`: evaluate a saved model on its held-out split.

The checkpoint's resolved config is the base; `--set` may change what does not alter the weights'
shapes (e.g. recursion.n_supervision for test-time depth, train.eval_max_puzzles, data.path, device).
The EMA weights are used when the checkpoint has them (as the trainer's evaluation does).
"""

from __future__ import annotations

import os
from typing import Sequence

from trm_core.config import from_dict, parse_override, set_value, validate
from trm_core.errors import UserError
from trm_core.model.trm import build_model
from trm_core.train.checkpoint import describe, load_checkpoint
from trm_core.train.evaluate import evaluate
from trm_core.train.loop import check_names, load_data
from trm_core.train.runtime import autocast_factory, resolve_device, set_cpu_threads
from trm_core.train.schedules import full_depth


def evaluate_checkpoint(path: str | os.PathLike, overrides: Sequence[str] = ()) -> dict:
    data = load_checkpoint(path)
    try:
        cfg = from_dict(data["config"])
    except UserError as exc:
        raise UserError(f"checkpoint {path} holds a config this trainer cannot read: {exc}") from None
    for text in overrides:
        key, value = parse_override(text)
        set_value(cfg, key, value, source="--set")
    validate(cfg)
    check_names(cfg)
    device = resolve_device(cfg.device)
    set_cpu_threads(device, cfg.train.cpu_threads)
    dataset, _, inputs, labels = load_data(cfg)
    model = build_model(cfg, dataset.meta["vocab_size"], dataset.meta["seq_len"])
    try:
        weights = data["ema"]["model"] if data.get("ema") else data["model"]
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"checkpoint {path} does not match this config: {describe(exc)}") from None
    model.to(device)
    batch = cfg.train.eval_batch_size or cfg.train.batch_size
    metrics = evaluate(model, inputs, labels, full_depth(cfg), batch, device, autocast_factory(device, cfg.train.dtype))
    return {"step": int(data["step"]), "eval/weights": "ema" if data.get("ema") else "model", **metrics}
