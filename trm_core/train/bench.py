"""Training throughput: `python -m trm_core bench train --preset P [--set ...] [--steps N]`.

Runs the real training step (ACT refill, forward, loss, backward, optimiser, EMA) on random
puzzles of the preset's shape, for each variant that this machine supports: eager / compiled x
fp32 / bf16 (bf16 on CUDA only). A puzzle-step is one supervision step of one puzzle, so
puzzle-steps/s = batch_size x optimiser steps/s. FLOPs per puzzle-step are counted analytically
from the model's matmuls (forward of T*(n+1) calls of f plus the backward of the last pass).
On CUDA the table also prints MFU: achieved TFLOP/s over the device's dense peak for the variant's
dtype (PEAK_TFLOPS, from the vendors' datasheets, or `--peak-tflops BF16,FP32`). The last printed
line is JSON.
"""

from __future__ import annotations

import json
import time
from typing import Sequence, TextIO

import torch

from trm_core.config import load_config, set_value
from trm_core.errors import UserError
from trm_core.model.trm import build_model, task_shape
from trm_core.train.act import ActBatch
from trm_core.rng import Streams
from trm_core.train.loop import train_step
from trm_core.train.session import Session, check_names
from trm_core.train.optim import EMA, OPTIMIZERS
from trm_core.train.runtime import autocast_factory, forward_dtype, resolve_device, seed_everything, set_cpu_threads

VARIANTS = ["eager_fp32", "compiled_fp32", "eager_bf16", "compiled_bf16"]

# Dense peak TFLOP/s per GPU from the vendors' datasheets: (bf16 on tensor cores with fp32
# accumulation, fp32 without tensor cores - torch's default, TF32 off). Matched against
# torch.cuda.get_device_name() in order, so the more specific names come first.
PEAK_TFLOPS: list[tuple[str, tuple[float, float]]] = [
    ("H100 PCIe", (756.5, 51.2)),
    ("H100", (989.4, 66.9)),
    ("H200", (989.4, 66.9)),
    ("A100", (312.0, 19.5)),
    ("RTX 5090", (209.5, 104.8)),
    ("RTX 4090", (165.2, 82.6)),
]


def peak_tflops(device: torch.device, given: str | None = None) -> dict[str, float] | None:
    """{'bfloat16': ..., 'float32': ...} for MFU: `given` ("BF16,FP32") or the table; None on a CPU
    or an unknown GPU without `given`."""
    if given is not None:
        try:
            bf16, fp32 = (float(x) for x in given.split(","))
            if bf16 <= 0 or fp32 <= 0:
                raise ValueError
        except ValueError:
            raise UserError(f"--peak-tflops must be two positive numbers BF16,FP32 (e.g. 989.4,66.9), "
                            f"but got {given!r}") from None
        return {"bfloat16": bf16, "float32": fp32}
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (bf16, fp32) in PEAK_TFLOPS:
        if key in name:
            return {"bfloat16": bf16, "float32": fp32}
    return None


class RandomPuzzles:
    """Stand-in for TrainStream: uniformly random tokens and labels (throughput only, nothing to learn)."""

    def __init__(self, vocab_size: int, n_cells: int, seed: int):
        self.vocab_size, self.n_cells = vocab_size, n_cells
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.randint(1, self.vocab_size, (n, self.n_cells), generator=self.generator)
        y = torch.randint(2, self.vocab_size, (n, self.n_cells), generator=self.generator)
        return x, y, torch.zeros(n, dtype=torch.long)


def time_variant(cfg, device: torch.device, compiled: bool, dtype: str, steps: int, warmup: int) -> float:
    """Optimiser steps per second of one variant."""
    seed_everything(cfg.seed)
    vocab, cells = task_shape(cfg.data)
    model = build_model(cfg, vocab, cells).to(device)
    model.forward_dtype = forward_dtype(device, dtype, cfg.train.precision)
    if compiled:
        model.compile_f()
    ema = EMA(model, cfg.optim.ema_decay, cfg.optim.ema_start_step) if cfg.optim.ema_decay > 0 else None
    optimizer = OPTIMIZERS.get(cfg.optim.name)(model, cfg.optim)
    batch = ActBatch.empty(model, cfg.train.batch_size, cfg.recursion.chains, device)
    s = Session(cfg, device, model, ema, optimizer, RandomPuzzles(vocab, cells, cfg.seed), batch,
                Streams.seeded(cfg.seed, device))
    autocast = autocast_factory(device, dtype, cfg.train.precision)
    for _ in range(warmup):
        train_step(s, autocast)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        stats = train_step(s, autocast)
    float(stats["loss"])  # wait for the last step
    _sync(device)
    return steps / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(source: str, overrides: Sequence[str], steps: int, warmup: int, variants: str, out: TextIO,
                peak: str | None = None) -> dict:
    if steps < 1 or warmup < 0:
        raise UserError(f"--steps >= 1 and --warmup >= 0 must hold, but got {steps} and {warmup}")
    cfg = load_config(source, overrides)
    check_names(cfg)
    # the benchmark measures the preset's model; its EMA and optimiser are part of a training step
    set_value(cfg, "train.compile", False)
    device = resolve_device(cfg.device)
    peaks = peak_tflops(device, peak)
    threads = set_cpu_threads(device, cfg.train.cpu_threads)
    wanted = VARIANTS if variants == "all" else [v.strip() for v in variants.split(",")]
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        raise UserError(f"--variants must be from {', '.join(VARIANTS)}, but got {', '.join(unknown)}")
    vocab, cells = task_shape(cfg.data)
    model = build_model(cfg, vocab, cells)
    r = cfg.recursion
    flops = model.flops_per_puzzle_step(r.n_inner, r.n_outer, training=True)
    results: dict[str, dict] = {}
    for name in wanted:
        compiled, dtype = name.startswith("compiled"), ("bfloat16" if name.endswith("bf16") else "float32")
        if dtype == "bfloat16" and device.type != "cuda":
            results[name] = {"skipped": "bf16 autocast is measured on CUDA only"}
            continue
        try:
            rate = time_variant(cfg, device, compiled, dtype, steps, warmup) * cfg.train.batch_size
        except Exception as exc:  # torch.compile fails in many ways on machines without a toolchain
            if not compiled:
                raise
            results[name] = {"skipped": f"torch.compile failed: {str(exc).strip().splitlines()[0][:120]}"}
            continue
        results[name] = {"puzzle_steps_per_s": rate, "tflops": rate * flops / 1e12}
        if peaks is not None:
            results[name]["mfu"] = results[name]["tflops"] / peaks[dtype]
    summary = {"preset": source, "device": str(device), "cpu_threads": threads, "batch_size": cfg.train.batch_size,
               "n_inner": r.n_inner, "n_outer": r.n_outer, "n_params": model.n_params(),
               "flops_per_puzzle_step": flops, "steps": steps, "peak_tflops": peaks, "results": results}
    _print_table(summary, out)
    out.write(json.dumps(summary) + "\n")
    return summary


def _print_table(summary: dict, out: TextIO) -> None:
    out.write(f"preset {summary['preset']} on {summary['device']} ({summary['cpu_threads']} CPU threads): "
              f"{summary['n_params']:,} parameters, {summary['flops_per_puzzle_step'] / 1e9:.3f} GFLOP per "
              f"puzzle-step, batch {summary['batch_size']}, n={summary['n_inner']} T={summary['n_outer']}\n")
    base = summary["results"].get("eager_fp32", {}).get("puzzle_steps_per_s")
    out.write(f"{'variant':<15}{'puzzle-steps/s':>16}{'vs eager fp32':>15}{'TFLOP/s':>10}{'MFU':>8}\n")
    for name, r in summary["results"].items():
        if "skipped" in r:
            out.write(f"{name:<15}  skipped: {r['skipped']}\n")
            continue
        ratio = f"{r['puzzle_steps_per_s'] / base:.2f}x" if base else "-"
        mfu = f"{r['mfu']:.1%}" if "mfu" in r else "-"
        out.write(f"{name:<15}{r['puzzle_steps_per_s']:>16.1f}{ratio:>15}{r['tflops']:>10.4f}{mfu:>8}\n")
