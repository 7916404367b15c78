"""Training throughput: `python -m trm_core bench train --preset P [--set ...] [--steps N]`.

Runs the real training step (ACT refill, forward, loss, backward, optimiser, EMA) on random
puzzles of the preset's shape, for each variant: eager / compiled x fp32 / bf16 (bf16 as the
config's train.precision says: amp by default, `--set train.precision=reference` for TRM's
numerics). Variants are timed interleaved, round by round, so a load on the machine hits all of
them alike. A puzzle-step is one supervision step of one puzzle, so puzzle-steps/s = batch_size x
optimiser steps/s; a row-step is one supervision step of one row (a puzzle's chain), so its cost
shows what K chains add per row. FLOPs per puzzle-step are counted analytically from the model's
matmuls (forward of T*(n+1) calls of f plus the backward of the last pass). The efficiency column
is the achieved FLOP/s over a peak: on CUDA the device's dense datasheet peak for the variant's
dtype (MFU; PEAK_TFLOPS or `--peak-tflops BF16,FP32`), on a CPU the roofline a short matmul probe
measures on this machine, at the same threads, for fp32 and for bf16. The last printed line is JSON.

`--chains 1,4` times the first variant at K chains per puzzle (the same puzzles per step, K times
the rows) and prints each K's cost against the first K's, per step and per row.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from typing import Sequence, TextIO

import torch

from trm_core.config import load_config, set_value
from trm_core.errors import UserError
from trm_core.model.trm import build_model, task_shape
from trm_core.train.act import ActBatch
from trm_core.rng import Streams
from trm_core.train.loop import train_step
from trm_core.names import check_names
from trm_core.train.session import Session
from trm_core.train.optim import EMA, OPTIMIZERS
from trm_core.runtime import autocast_factory, forward_dtype, resolve_device, seed_everything, set_cpu_threads

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


class Stepper:
    """One variant's training session on random puzzles, stepped on demand."""

    def __init__(self, cfg, device: torch.device, compiled: bool, dtype: str):
        seed_everything(cfg.seed)
        vocab, cells = task_shape(cfg.data)
        model = build_model(cfg, vocab, cells).to(device)
        model.forward_dtype = forward_dtype(device, dtype, cfg.train.precision)
        if compiled:
            model.compile_f()
        ema = EMA(model, cfg.optim.ema_decay, cfg.optim.ema_start_step) if cfg.optim.ema_decay > 0 else None
        optimizer = OPTIMIZERS.get(cfg.optim.name)(model, cfg.optim)
        batch = ActBatch.empty(model, cfg.train.batch_size, cfg.recursion.chains, device)
        self.session = Session(cfg, device, model, ema, optimizer, RandomPuzzles(vocab, cells, cfg.seed), batch,
                               Streams.seeded(cfg.seed, device))
        self.autocast = autocast_factory(device, dtype, cfg.train.precision)
        self.device = device

    def run(self, steps: int) -> float:
        """Seconds for `steps` optimiser steps (the device synchronised before and after)."""
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            stats = train_step(self.session, self.autocast)
        float(stats["loss"])  # wait for the last step
        _sync(self.device)
        return time.perf_counter() - start


def time_interleaved(steppers: dict[str, Stepper], steps: int, warmup: int, rounds: int) -> dict[str, float]:
    """Optimiser steps per second of each stepper: warm-up (and compilation), then `rounds` rounds in
    which every stepper runs steps // rounds steps in turn; the median round's rate."""
    for s in steppers.values():
        if warmup:
            s.run(warmup)
    per_round = max(1, steps // rounds)
    rates: dict[str, list[float]] = {k: [] for k in steppers}
    for _ in range(rounds):
        for name, s in steppers.items():
            rates[name].append(per_round / s.run(per_round))
    return {k: statistics.median(v) for k, v in rates.items()}


def time_variant(cfg, device: torch.device, compiled: bool, dtype: str, steps: int, warmup: int) -> float:
    """Optimiser steps per second of one variant."""
    return time_interleaved({"one": Stepper(cfg, device, compiled, dtype)}, steps, warmup, 1)["one"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


PROBE_SHAPE = (2592, 512, 1536)
"""(m, k, n) of the CPU roofline probe: one MLP matmul of the paper shape (batch 32 x 81 cells)."""


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype, seconds: float = 0.3) -> float:
    """Dense matmul TFLOP/s this device reaches at the current thread count: the roofline a training
    step can at best approach (a step also has elementwise work that no matmul peak counts)."""
    m, k, n = PROBE_SHAPE
    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(k, n, generator=g).to(device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or runs < 3:
        a @ b
        runs += 1
    _sync(device)
    return 2 * m * k * n * runs / (time.perf_counter() - start) / 1e12


def bench_train(source: str, overrides: Sequence[str], steps: int, warmup: int, variants: str, out: TextIO,
                peak: str | None = None, rounds: int = 3, chains: Sequence[int] = ()) -> dict:
    if steps < 1 or warmup < 0 or rounds < 1:
        raise UserError(f"--steps >= 1, --warmup >= 0 and --rounds >= 1 must hold, but got {steps}, {warmup} and {rounds}")
    if any(k < 1 for k in chains):
        raise UserError(f"--chains must be >= 1, but got {','.join(map(str, chains))}")
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
    roofline = "mfu"
    if peaks is None and device.type == "cpu":  # the CPU's own roofline, measured here
        peaks = {"float32": matmul_peak_tflops(device, torch.float32), "bfloat16": matmul_peak_tflops(device, torch.bfloat16)}
        roofline = "roofline"
    vocab, cells = task_shape(cfg.data)
    model = build_model(cfg, vocab, cells)
    r = cfg.recursion
    flops = model.flops_per_puzzle_step(r.n_inner, r.n_outer, training=True)
    results: dict[str, dict] = {}
    steppers: dict[str, Stepper] = {}
    for name in wanted:
        compiled, dtype = name.startswith("compiled"), ("bfloat16" if name.endswith("bf16") else "float32")
        try:
            steppers[name] = Stepper(cfg, device, compiled, dtype)
            if compiled:  # compile now, so that a failure is reported here and not mid-round
                steppers[name].run(1)
        except Exception as exc:  # torch.compile fails in many ways on machines without a toolchain
            if not compiled:
                raise
            steppers.pop(name, None)
            results[name] = {"skipped": f"torch.compile failed: {str(exc).strip().splitlines()[0][:120]}"}
    rates = time_interleaved(steppers, steps, warmup, rounds)
    rows = cfg.train.batch_size * r.chains
    for name in wanted:
        if name not in rates:
            continue
        dtype = "bfloat16" if name.endswith("bf16") else "float32"
        rate = rates[name] * cfg.train.batch_size
        results[name] = {"puzzle_steps_per_s": rate, "tflops": rate * flops / 1e12,
                         "us_per_row_step": 1e6 / (rates[name] * rows)}
        if peaks is not None:
            results[name][roofline] = results[name]["tflops"] / peaks[dtype]
    summary = {"preset": source, "device": str(device), "cpu_threads": threads, "batch_size": cfg.train.batch_size,
               "chains": r.chains, "n_inner": r.n_inner, "n_outer": r.n_outer, "n_params": model.n_params(),
               "precision": cfg.train.precision, "flops_per_puzzle_step": flops, "steps": steps, "rounds": rounds,
               "peak_tflops": peaks, "peak_kind": roofline if peaks is not None else None, "results": results}
    _print_table(summary, out)
    if chains:
        summary["chains_cost"] = bench_chains(cfg, device, wanted[0], chains, steps, warmup, rounds, out)
    out.write(json.dumps(summary) + "\n")
    return summary


def bench_chains(cfg, device: torch.device, variant: str, chains: Sequence[int], steps: int, warmup: int,
                 rounds: int, out: TextIO) -> list[dict]:
    """K chains per puzzle at the same puzzles per step, interleaved: cost per step and per row
    against the first K (WTA's promise: K chains cost about K times one, not more)."""
    dtype = "bfloat16" if variant.endswith("bf16") else "float32"
    steppers = {}
    for k in chains:
        c = copy.deepcopy(cfg)
        set_value(c, "recursion.chains", k)
        set_value(c, "train.batch_rows", 0)
        steppers[k] = Stepper(c, device, variant.startswith("compiled"), dtype)
    rates = time_interleaved(steppers, steps, warmup, rounds)
    base = chains[0]
    rows = [{"chains": k, "rows": cfg.train.batch_size * k, "ms_per_step": 1e3 / rates[k],
             "cost_vs_first": rates[base] / rates[k], "per_row_vs_first": rates[base] * base / (rates[k] * k)}
            for k in chains]
    out.write(f"{variant}, {cfg.train.batch_size} puzzles per step, K chains interleaved over {rounds} rounds:\n")
    out.write(f"{'K':>4}{'rows':>7}{'ms/step':>10}{f'vs K={base}':>10}{'per row':>10}\n")
    for row in rows:
        out.write(f"{row['chains']:>4}{row['rows']:>7}{row['ms_per_step']:>10.2f}{row['cost_vs_first']:>9.2f}x"
                  f"{row['per_row_vs_first']:>9.2f}x\n")
    return rows


def _print_table(summary: dict, out: TextIO) -> None:
    kind = summary["peak_kind"]
    peaks = summary["peak_tflops"]
    out.write(f"preset {summary['preset']} on {summary['device']} ({summary['cpu_threads']} CPU threads): "
              f"{summary['n_params']:,} parameters, {summary['flops_per_puzzle_step'] / 1e9:.3f} GFLOP per "
              f"puzzle-step, batch {summary['batch_size']} x {summary['chains']} chain(s), n={summary['n_inner']} "
              f"T={summary['n_outer']}, bf16 precision {summary['precision']}\n")
    if kind == "roofline":
        out.write(f"CPU roofline (matmul probe {'x'.join(map(str, PROBE_SHAPE))}): fp32 {peaks['float32'] * 1e3:.0f} "
                  f"GFLOP/s, bf16 {peaks['bfloat16'] * 1e3:.0f} GFLOP/s\n")
    base = summary["results"].get("eager_fp32", {}).get("puzzle_steps_per_s")
    label = {"mfu": "MFU", "roofline": "of roofline", None: "-"}[kind]
    out.write(f"{'variant':<15}{'puzzle-steps/s':>16}{'vs eager fp32':>15}{'TFLOP/s':>10}{label:>13}{'us/row-step':>13}\n")
    for name, r in summary["results"].items():
        if "skipped" in r:
            out.write(f"{name:<15}  skipped: {r['skipped']}\n")
            continue
        ratio = f"{r['puzzle_steps_per_s'] / base:.2f}x" if base else "-"
        eff = f"{r[kind]:.1%}" if kind in r else "-"
        out.write(f"{name:<15}{r['puzzle_steps_per_s']:>16.1f}{ratio:>15}{r['tflops']:>10.4f}{eff:>13}"
                  f"{r['us_per_row_step']:>13.1f}\n")
