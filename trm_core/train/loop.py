"""The deep-supervision trainer: `train(cfg, report=None, *, out_dir=None, resume_from=None, gpu_share=None) -> dict`.

One optimiser step = one supervision step of a full batch (ACT, trm_core.train.act). The loop
reads top to bottom: depth -> refill -> lr -> forward/loss/backward -> clip -> step -> EMA ->
carry policies -> halting -> log -> eval/checkpoint/report. `report(metrics, checkpoint_dir)` is
called after every evaluation (every `train.eval_interval` steps and at the end) with a directory
that `resume_from=` accepts. With `out_dir`, the run also writes config.yaml, metrics.jsonl (one
JSON object per log/eval line) and final.json there.

Every evaluation also reports what the run has cost so far (cumulative over resumes; a sweep can
search on them, trm_core.metric_keys): `cost/train_s`, the wall seconds spent inside training steps
(the same per-step clock as perf/puzzle_steps_per_s; evaluations, checkpoints and start-up are not
in it, so it is at most time/elapsed_s); `cost/train_flops`, the analytic matmul FLOPs of those
steps (each step: rows of the batch, puzzles x chains, x `TRM.flops_per_puzzle_step(n, T,
training=True)` at that step's depth, so CGAR's cheaper early stages count as cheaper; with the
fixed-point solver it counts n unrolled iterations); `cost/gpu_s`, time/elapsed_s x the run's GPU
share (`gpu_share`: a sweep passes the trial's fractional GPU; default 1.0 on CUDA, 0.0 on a CPU).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import yaml
from tqdm import tqdm

from trm_core.config import TRMConfig, from_dict, to_dict, validate
from trm_core.errors import TrainingDiverged, write_text_atomic
from trm_core.model.chains import chain_diversity
from trm_core.model.latents import Carry
from trm_core.model.trm import Dynamics
from trm_core import checkpoint as ckpt
from trm_core.train import signals
from trm_core.train.evaluate import evaluate
from trm_core.train.loss import pick, supervision_loss
from trm_core.train.optim import lr_factor, set_lr
from trm_core.runtime import autocast_factory, resolve_device, set_cpu_threads, set_deterministic
from trm_core.train.schedules import DEPTH_SCHEDULES, full_depth
from trm_core.data.load import Data, load_data
from trm_core.names import check_names
from trm_core.train.session import Session, build_session, checkpoint_payload, restore

Report = Callable[[dict, Optional[str]], None]


def train_step(s: Session, autocast) -> dict[str, torch.Tensor]:
    """One supervision step of the whole batch; returns detached per-step statistics."""
    cfg, batch, r = s.cfg, s.batch, s.cfg.recursion
    depth = DEPTH_SCHEDULES.get(r.depth_schedule)(cfg, s.step, cfg.train.steps)
    batch.refill(s.model, s.stream, s.streams.init)
    lr = cfg.optim.lr * lr_factor(s.step, cfg.optim, cfg.train.steps)
    set_lr(s.optimizer, lr / cfg.optim.lr)
    inputs, puzzle_ids = batch.row_inputs()
    with autocast():
        step = s.model(state_noise(batch.carry, r.state_noise_l, s.streams.noise), inputs, depth.n_inner,
                       depth.n_outer, Dynamics.training(r, s.streams.noise), puzzle_ids)
    carry, logits, q_halt = step.carry, step.logits, step.q_halt
    alive = batch.alive if r.expunge_cos > 0 else None
    out = supervision_loss(logits, q_halt, batch.labels, batch.steps + 1, depth.n_supervision, cfg.loss, alive)
    s.optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    # clip when asked; the norm is logged either way
    max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(s.model.parameters(), max_norm)
    s.optimizer.step()
    if s.ema is not None:
        s.ema.update(s.model)
    # chains: the carry policies run after the backward pass; a puzzle halts on its winner's q_halt;
    # then SIC's expunge drops near-duplicate chains of the puzzles that go on
    batch.apply_carry_policies(carry, out.winner, r)
    batch.advance(pick(q_halt.detach(), out.winner), depth.n_supervision, r.halt_exploration_prob, s.streams.explore)
    expunged = batch.expunge(out.rows.ce.detach(), r.expunge_cos)
    s.step += 1
    halted = batch.halted
    stats = {
        "loss": out.loss.detach(), "lm_loss": out.lm_loss, "halt_loss": out.halt_loss,
        "cell_acc": out.cell_correct.mean(), "exact_acc": out.exact.float().mean(),
        "halted": halted.sum(), "halted_steps": batch.steps[halted].sum(),
        "halted_exact": out.exact[halted].sum(), "grad_norm": grad_norm.detach().float(), "lr": torch.tensor(lr),
        "n_inner": torch.tensor(depth.n_inner), "n_outer": torch.tensor(depth.n_outer),
        "n_supervision": torch.tensor(depth.n_supervision),
    }
    for key, value in (step.solver_stats or {}).items():  # fixed-point solver: iterations, residual
        stats[key] = torch.tensor(value)
    chains = batch.chains
    if chains > 1:
        stats["wins"] = torch.bincount(out.winner, minlength=chains)
        stats["winner_ce"] = out.lm_loss
        stats["mean_ce"] = out.rows.ce.detach().mean()
        stats["chain_cos"] = chain_diversity(carry.z_l, batch.inputs.shape[0])
        stats["expunged"] = expunged
        stats["live_chains"] = batch.alive.float().sum() / batch.inputs.shape[0]
    return stats


def state_noise(carry: Carry, sigma: float, generator: Optional[torch.Generator]) -> Carry:
    """SIC's state noise (recursion.state_noise_l): z_L + sigma * eps once per supervision step, before
    the step, from the run's noise stream (jvdillon/sic code/model.py:1538-1541, its z_L_noise)."""
    if sigma <= 0:
        return carry
    eps = torch.randn(carry.z_l.shape, generator=generator, device=carry.z_l.device, dtype=carry.z_l.dtype)
    return Carry(carry.z_h, carry.z_l + sigma * eps)


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
        wins = self.sums.pop("wins", None)
        v = {k: float(t) for k, t in self.sums.items()}
        n, halted = self.steps, max(v["halted"], 1.0)
        out = {
            "train/loss": v["loss"] / n, "train/lm_loss": v["lm_loss"] / n, "train/halt_loss": v["halt_loss"] / n,
            "train/cell_acc": v["cell_acc"] / n, "train/exact_acc": v["exact_acc"] / n,
            "train/halted_exact_acc": v["halted_exact"] / halted, "train/avg_steps": v["halted_steps"] / halted,
            "train/lr": v["lr"] / n, "train/grad_norm": v["grad_norm"] / n,
            "train/n_inner": v["n_inner"] / n, "train/n_outer": v["n_outer"] / n,
            "train/n_supervision": v["n_supervision"] / n,
            "perf/puzzle_steps_per_s": batch_size * n / max(self.seconds, 1e-9),
        }
        if "fp_iters" in v:
            out.update({"train/fp_iters": v["fp_iters"] / n, "train/fp_residual": v["fp_residual"] / n})
        if wins is not None:
            share = wins.float() / wins.sum().clamp_min(1)
            out.update({f"train/win_rate/{k}": float(x) for k, x in enumerate(share)})
            out.update({"train/winner_ce": v["winner_ce"] / n, "train/mean_ce": v["mean_ce"] / n,
                        "train/chain_cos": v["chain_cos"] / n, "train/expunged": v["expunged"] / n,
                        "train/live_chains": v["live_chains"] / n})
        return out


class RunOutput:
    """Evaluation, checkpoints, report() calls and the run files (config.yaml, metrics.jsonl
    appended and flushed per line, final.json written atomically) of one training run."""

    def __init__(self, s: Session, report: Optional[Report], out_dir: str | os.PathLike | None, data: Data,
                 gpu_share: float = 0.0):
        self.s, self.report, self.data, self.gpu_share = s, report, data, gpu_share
        self.out = Path(out_dir) if out_dir is not None else None
        # The longest training step and evaluation (with its checkpoint) so far: a stop request waits
        # for at most one of each, then one checkpoint (`stop_grace_s`).
        self.max_step_s = self.max_eval_s = self.ckpt_s = 0.0
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

    def _evaluate(self, data, prefix: str) -> dict:
        s, cfg = self.s, self.s.cfg
        autocast = autocast_factory(s.device, cfg.train.dtype, cfg.train.precision)
        eval_batch = cfg.train.eval_batch_size or cfg.train.batch_size
        return evaluate(s.eval_model, data, full_depth(cfg), eval_batch, s.device, autocast, cfg.seed, prefix)

    def evaluate(self, train_metrics: dict, last: bool = False) -> dict:
        """Evaluate (EMA weights if any), checkpoint, log and report; returns the metrics.

        The final evaluation (the last step, or the first to reach train.target_exact_acc) also
        gives final/* metrics: on the whole split when periodic evaluations used a subset
        (train.eval_max_puzzles), else the same numbers as eval/*.
        """
        s, t = self.s, self.s.cfg.train
        t_eval = time.perf_counter()
        metrics = {"step": s.step, "model/n_params": s.model.n_params(), **train_metrics,
                   **self._evaluate(self.data.eval_set, "eval/")}
        if last or (t.target_exact_acc > 0 and metrics["eval/exact_acc"] >= t.target_exact_acc):
            if self.data.final_set is not None:
                metrics.update(self._evaluate(self.data.final_set, "final/"))
            else:
                metrics.update({"final/" + k[len("eval/"):]: v for k, v in list(metrics.items()) if k.startswith("eval/")})
        metrics["time/elapsed_s"] = s.sync_clock()
        metrics.update(self.costs(metrics["time/elapsed_s"]))
        ckpt_dir = None
        if self.ckpt_root is not None:
            ckpt_dir = self.save_checkpoint()
        self.max_eval_s = max(self.max_eval_s, time.perf_counter() - t_eval)
        metrics["time/stop_grace_s"] = self.stop_grace_s()
        self.log(metrics)
        if self.report is not None:
            self.report(metrics, ckpt_dir)
        return metrics

    def costs(self, elapsed_s: float) -> dict[str, float]:
        """cost/* at an evaluation: seconds in training steps, their analytic FLOPs, GPU share x wall."""
        return {"cost/train_s": self.s.train_s, "cost/train_flops": float(self.s.train_flops),
                "cost/gpu_s": elapsed_s * self.gpu_share}

    def save_checkpoint(self) -> str:
        t0 = time.perf_counter()
        path = ckpt.save_checkpoint(checkpoint_payload(self.s), self.ckpt_root, self.s.step,
                                    self.s.cfg.train.keep_checkpoints)
        self.ckpt_s = time.perf_counter() - t0
        return str(path)

    def stop_grace_s(self) -> float:
        """The most a stop request (SIGINT/SIGTERM, train/signals.py) can wait for its checkpoint, as
        measured so far: the step in progress, with its evaluation, and one checkpoint write."""
        return round(self.max_step_s + self.max_eval_s + self.ckpt_s, 2)

    def final(self, metrics: dict) -> None:
        if self.out is None:
            return
        self.metrics_file.close()
        write_text_atomic(self.out / "final.json", json.dumps(metrics, indent=2) + "\n")


def train(cfg: TRMConfig, report: Optional[Report] = None, *, out_dir: str | os.PathLike | None = None,
          resume_from: str | os.PathLike | None = None, progress: bool = False,
          gpu_share: float | None = None) -> dict:
    """Train a TRM as `cfg` says; returns the final metrics (the last evaluation and train stats).

    `gpu_share`: the share of a GPU this run holds, for `cost/gpu_s` (time/elapsed_s x share): a sweep
    passes its trial's fractional GPU (0.25 when four trials share one); None means 1.0 when training
    on CUDA and 0.0 on a CPU.
    """
    cfg = validate(from_dict(to_dict(cfg)))
    check_names(cfg)
    device = resolve_device(cfg.device)
    if gpu_share is None:
        gpu_share = 1.0 if device.type == "cuda" else 0.0
    if not (isinstance(gpu_share, (int, float)) and math.isfinite(gpu_share) and gpu_share >= 0):
        raise ValueError(f"gpu_share must be a finite number >= 0, but got {gpu_share!r}")
    set_cpu_threads(device, cfg.train.cpu_threads)
    set_deterministic(cfg.train.deterministic, device)
    data = load_data(cfg)
    s = build_session(cfg, device, data.dataset, data.stream)
    if resume_from is not None:
        restore(s, ckpt.load_checkpoint(resume_from), str(resume_from))
    output = RunOutput(s, report, out_dir, data, float(gpu_share))
    autocast = autocast_factory(device, cfg.train.dtype, cfg.train.precision)
    t = cfg.train
    s.clock_start = time.perf_counter()
    stats, last_train, metrics = TrainStats(), {}, None
    bar = tqdm(total=t.steps, initial=s.step, disable=not progress or None, dynamic_ncols=True, unit="step")
    while s.step < t.steps:
        t_step = time.perf_counter()
        step_stats = train_step(s, autocast)
        step_s = time.perf_counter() - t_step
        stats.add(step_stats, step_s)
        s.count_step(step_s, int(step_stats["n_inner"]), int(step_stats["n_outer"]))
        output.max_step_s = max(output.max_step_s, step_s)
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
            metrics = output.evaluate(last_train, last)
            if progress:
                bar.write(_eval_line(metrics))
            if "final/exact_acc" in metrics:  # the last step, or the accuracy target was reached
                break
        if out_of_time:
            break
        if signals.stop_requested():  # SIGINT/SIGTERM under the CLI: checkpoint here, then stop (train/signals.py)
            s.sync_clock()
            signals.save_and_stop(s.step, output.ckpt_root and output.save_checkpoint)
    bar.close()
    if metrics is None or "final/exact_acc" not in metrics:
        metrics = output.evaluate(last_train, last=True)
    output.final(metrics)
    return metrics


def _eval_line(m: dict) -> str:
    return (f"step {m['step']}: eval exact {m['eval/exact_acc']:.4f} cell {m['eval/cell_acc']:.4f} "
            f"halted exact {m['eval/halted_exact_acc']:.4f} avg steps {m['eval/avg_steps']:.2f} "
            f"({m['time/elapsed_s']:.0f} s)")
