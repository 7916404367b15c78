"""The deep-supervision trainer: `train(cfg, report=None, *, out_dir=None, resume_from=None) -> dict`.

One optimiser step = one supervision step of a full batch (ACT, trm_core.train.act). The loop
reads top to bottom: depth -> refill -> lr -> forward/loss/backward -> clip -> step -> EMA ->
halting -> log -> eval/checkpoint/report. `report(metrics, checkpoint_dir)` is called after every
evaluation (every `train.eval_interval` steps and at the end) with a directory that `resume_from=`
accepts. With `out_dir`, the run also writes config.yaml, metrics.jsonl (one JSON object per
log/eval line) and final.json there.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import yaml
from tqdm import tqdm

from trm_core.config import TRMConfig, from_dict, to_dict, validate
from trm_core.errors import TrainingDiverged, UserError, write_text_atomic
from trm_core.model.latents import LATENT_INITS
from trm_core.model.trm import RECURSION_UPDATES, TRM, build_model
from trm_core.train import checkpoint as ckpt
from trm_core.train import signals
from trm_core.train.act import ActBatch
from trm_core.train.evaluate import evaluate
from trm_core.train.loss import STEP_WEIGHTINGS, supervision_loss
from trm_core.train.optim import EMA, OPTIMIZERS, lr_factor, set_lr
from trm_core.train.runtime import autocast_factory, resolve_device, seed_everything, set_cpu_threads
from trm_core.train.schedules import DEPTH_SCHEDULES, full_depth

Report = Callable[[dict, Optional[str]], None]


def check_names(cfg: TRMConfig) -> None:
    """Fail before any work when a registry name in the config is unknown."""
    LATENT_INITS.get(cfg.recursion.latent_init)
    RECURSION_UPDATES.get(cfg.recursion.update)
    DEPTH_SCHEDULES.get(cfg.recursion.depth_schedule)
    STEP_WEIGHTINGS.get(cfg.loss.step_weighting)
    OPTIMIZERS.get(cfg.optim.name)


def load_data(cfg: TRMConfig):
    """(dataset, TrainStream, eval inputs, eval labels) for cfg.data."""
    from trm_core.data.store import build_from_config, load_dataset
    from trm_core.data.stream import TrainStream

    dataset = load_dataset(build_from_config(cfg.data))
    stream = TrainStream(dataset, seed=cfg.seed, augment=cfg.data.augment)
    n_eval = cfg.train.eval_max_puzzles or None
    eval_inputs = np.array(dataset.inputs(cfg.data.eval_split)[:n_eval])
    eval_labels = np.array(dataset.labels(cfg.data.eval_split)[:n_eval])
    return dataset, stream, eval_inputs, eval_labels


@dataclass
class Session:
    """Everything that changes while training; a checkpoint saves and restores all of it."""

    cfg: TRMConfig
    device: torch.device
    model: TRM
    ema: Optional[EMA]
    optimizer: torch.optim.Optimizer
    stream: Any
    batch: ActBatch
    explore: torch.Generator
    """Exploration minimums (and random latent inits)."""
    step: int = 0
    elapsed_s: float = 0.0
    """Wall seconds of this run (over resumes) up to `clock_start`."""
    clock_start: float = 0.0

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
    model = build_model(cfg, dataset.meta["vocab_size"], dataset.meta["seq_len"]).to(device)
    ema = EMA(model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
    if cfg.train.compile:
        model.compile_f()
        if ema is not None:
            ema.model.compile_f()
    optimizer = OPTIMIZERS.get(cfg.optim.name)(model, cfg.optim)
    batch = ActBatch.empty(model, cfg.train.batch_size, device)
    explore = torch.Generator().manual_seed(cfg.seed + 1)
    return Session(cfg, device, model, ema, optimizer, stream, batch, explore)


def checkpoint_payload(s: Session) -> dict[str, Any]:
    return {
        "step": s.step, "elapsed_s": s.elapsed_s, "config": to_dict(s.cfg),
        "model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
        "ema": s.ema.state_dict() if s.ema is not None else None,
        "batch": s.batch.state_dict(), "stream": s.stream.state_dict(), "rng": ckpt.rng_state(s.explore),
    }


def restore(s: Session, data: dict[str, Any], source: str) -> None:
    """Load a checkpoint into a freshly built session; a mismatch is a one-line UserError."""
    try:
        s.model.load_state_dict(data["model"])
        s.optimizer.load_state_dict(data["optimizer"])
        if s.ema is not None:
            if data["ema"] is None:
                raise ValueError("the checkpoint has no EMA weights but optim.ema_decay > 0")
            s.ema.load_state_dict(data["ema"])
        batch = ActBatch.from_state_dict(data["batch"], s.device)
        if batch.inputs.shape != s.batch.inputs.shape:
            raise ValueError(f"its batch is {tuple(batch.inputs.shape)}, the config's {tuple(s.batch.inputs.shape)}")
        s.batch = batch
        s.stream.load_state_dict(data["stream"])
        ckpt.set_rng_state(data["rng"], s.explore)
        s.step, s.elapsed_s = int(data["step"]), float(data["elapsed_s"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"checkpoint {source} does not match this config: {ckpt.describe(exc)}") from None


def train_step(s: Session, autocast) -> dict[str, torch.Tensor]:
    """One supervision step of the whole batch; returns detached per-step statistics."""
    cfg, batch = s.cfg, s.batch
    depth = DEPTH_SCHEDULES.get(cfg.recursion.depth_schedule)(cfg, s.step, cfg.train.steps)
    batch.refill(s.model, s.stream, s.explore)
    lr = cfg.optim.lr * lr_factor(s.step, cfg.optim, cfg.train.steps)
    set_lr(s.optimizer, lr / cfg.optim.lr)
    with autocast():
        batch.carry, logits, q_halt = s.model(batch.carry, batch.inputs, depth.n_inner, depth.n_outer)
    out = supervision_loss(logits, q_halt, batch.labels, batch.steps + 1, depth.n_supervision, cfg.loss)
    s.optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    # clip when asked; the norm is logged either way
    max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(s.model.parameters(), max_norm)
    s.optimizer.step()
    if s.ema is not None:
        s.ema.update(s.model)
    batch.advance(q_halt.detach(), depth.n_supervision, cfg.recursion.halt_exploration_prob, s.explore)
    s.step += 1
    halted = batch.halted
    return {
        "loss": out.loss.detach(), "lm_loss": out.lm_loss, "halt_loss": out.halt_loss,
        "cell_acc": out.cell_correct.mean(), "exact_acc": out.exact.float().mean(),
        "halted": halted.sum(), "halted_steps": batch.steps[halted].sum(),
        "halted_exact": out.exact[halted].sum(), "grad_norm": grad_norm.detach().float(), "lr": torch.tensor(lr),
    }


class TrainStats:
    """Sums of per-step statistics between two log lines."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.steps, self.seconds = 0, 0.0

    def add(self, stats: dict[str, torch.Tensor], seconds: float) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0) + v
        self.steps += 1
        self.seconds += seconds

    def metrics(self, batch_size: int) -> dict[str, float]:
        if self.steps == 0:
            return {}
        v = {k: float(t) for k, t in self.sums.items()}
        n, halted = self.steps, max(v["halted"], 1.0)
        return {
            "train/loss": v["loss"] / n, "train/lm_loss": v["lm_loss"] / n, "train/halt_loss": v["halt_loss"] / n,
            "train/cell_acc": v["cell_acc"] / n, "train/exact_acc": v["exact_acc"] / n,
            "train/halted_exact_acc": v["halted_exact"] / halted, "train/avg_steps": v["halted_steps"] / halted,
            "train/lr": v["lr"] / n, "train/grad_norm": v["grad_norm"] / n,
            "perf/puzzle_steps_per_s": batch_size * n / max(self.seconds, 1e-9),
        }


class RunOutput:
    """Evaluation, checkpoints, report() calls and the run files (config.yaml, metrics.jsonl
    appended and flushed per line, final.json written atomically) of one training run."""

    def __init__(self, s: Session, report: Optional[Report], out_dir: str | os.PathLike | None, eval_data: tuple):
        self.s, self.report, self.eval_inputs, self.eval_labels = s, report, *eval_data
        self.out = Path(out_dir) if out_dir is not None else None
        self.metrics_file = None
        # checkpoints go to out_dir; without one, to a temp dir only if someone is told about them
        self.ckpt_root = self.out / "checkpoints" if self.out else None
        if self.out is None and report is not None:
            self.ckpt_root = Path(tempfile.mkdtemp(prefix="trm_ckpt_"))
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(s.cfg), sort_keys=False))
            self.metrics_file = open(self.out / "metrics.jsonl", "a")

    def log(self, metrics: dict) -> None:
        if self.metrics_file is not None:
            self.metrics_file.write(json.dumps(metrics) + "\n")
            self.metrics_file.flush()

    def evaluate(self, train_metrics: dict) -> dict:
        """Evaluate (EMA weights if any), checkpoint, log and report; returns the metrics."""
        s, cfg = self.s, self.s.cfg
        autocast = autocast_factory(s.device, cfg.train.dtype)
        eval_batch = cfg.train.eval_batch_size or cfg.train.batch_size
        metrics = {"step": s.step, "model/n_params": s.model.n_params(), **train_metrics,
                   **evaluate(s.eval_model, self.eval_inputs, self.eval_labels, full_depth(cfg), eval_batch,
                              s.device, autocast)}
        metrics["time/elapsed_s"] = s.sync_clock()
        ckpt_dir = None
        if self.ckpt_root is not None:
            payload = checkpoint_payload(s)
            ckpt_dir = str(ckpt.save_checkpoint(payload, self.ckpt_root, s.step, cfg.train.keep_checkpoints))
        self.log(metrics)
        if self.report is not None:
            self.report(metrics, ckpt_dir)
        return metrics

    def final(self, metrics: dict) -> None:
        if self.out is None:
            return
        self.metrics_file.close()
        write_text_atomic(self.out / "final.json", json.dumps(metrics, indent=2) + "\n")


def train(cfg: TRMConfig, report: Optional[Report] = None, *, out_dir: str | os.PathLike | None = None,
          resume_from: str | os.PathLike | None = None, progress: bool = False) -> dict:
    """Train a TRM as `cfg` says; returns the final metrics (the last evaluation and train stats)."""
    cfg = validate(from_dict(to_dict(cfg)))
    check_names(cfg)
    device = resolve_device(cfg.device)
    set_cpu_threads(device, cfg.train.cpu_threads)
    dataset, stream, *eval_data = load_data(cfg)
    s = build_session(cfg, device, dataset, stream)
    if resume_from is not None:
        restore(s, ckpt.load_checkpoint(resume_from), str(resume_from))
    output = RunOutput(s, report, out_dir, tuple(eval_data))
    autocast = autocast_factory(device, cfg.train.dtype)
    t = cfg.train
    s.clock_start = time.perf_counter()
    stats, last_train, metrics = TrainStats(), {}, None
    bar = tqdm(total=t.steps, initial=s.step, disable=not progress or None, dynamic_ncols=True, unit="step")
    while s.step < t.steps:
        t_step = time.perf_counter()
        stats.add(train_step(s, autocast), time.perf_counter() - t_step)
        bar.update(1)
        out_of_time = t.time_budget_s > 0 and s.elapsed() >= t.time_budget_s
        last = out_of_time or s.step == t.steps
        if s.step % t.log_interval == 0 or last:
            last_train = {**stats.metrics(t.batch_size), "time/elapsed_s": s.elapsed()}
            if not math.isfinite(last_train["train/loss"]):
                raise TrainingDiverged(s.step, f"train/loss is {last_train['train/loss']}")
            output.log({"step": s.step, **last_train})
            bar.set_postfix(loss=f"{last_train['train/loss']:.3f}", acc=f"{last_train['train/exact_acc']:.3f}",
                            ps_s=f"{last_train['perf/puzzle_steps_per_s']:.0f}")
            stats = TrainStats()
        if s.step % t.eval_interval == 0 or last:
            metrics = output.evaluate(last_train)
            if progress:
                bar.write(_eval_line(metrics))
            if t.target_exact_acc > 0 and metrics["eval/exact_acc"] >= t.target_exact_acc:
                break
        if out_of_time:
            break
        if signals.stop_requested():  # SIGINT/SIGTERM under the CLI: checkpoint here, then stop (train/signals.py)
            s.sync_clock()
            signals.save_and_stop(s.step, output.ckpt_root and (lambda: str(ckpt.save_checkpoint(
                checkpoint_payload(s), output.ckpt_root, s.step, t.keep_checkpoints))))
    bar.close()
    if metrics is None or metrics["step"] != s.step:
        metrics = output.evaluate(last_train)
    output.final(metrics)
    return metrics


def _eval_line(m: dict) -> str:
    return (f"step {m['step']}: eval exact {m['eval/exact_acc']:.4f} cell {m['eval/cell_acc']:.4f} "
            f"halted exact {m['eval/halted_exact_acc']:.4f} avg steps {m['eval/avg_steps']:.2f} "
            f"({m['time/elapsed_s']:.0f} s)")
