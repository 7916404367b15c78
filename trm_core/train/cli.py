"""`python -m trm_core train | bench train`: thin command lines over trm_core.train.

    python -m trm_core train PRESET_OR_YAML [--set k=v ...] --out DIR [--overwrite] [--device D]
    python -m trm_core train PRESET_OR_YAML [--set k=v ...] --resume RUN_DIR_OR_CKPT [--out DIR]
    python -m trm_core bench train --preset P [--set k=v ...] [--steps N] [--device D] [--peak-tflops BF16,FP32]

(`eval` lives in trm_core.infer.cli: the trainer's evaluation, or the test-time scaling engine.)

Config precedence: --set > YAML file > the preset it names > defaults; --device is `--set device=D`.
A run directory that already holds a run is never written into by accident: `--resume DIR`
continues it (from its latest readable checkpoint), `--overwrite` replaces it; resuming a run that
has already finished says so and changes nothing. SIGINT/SIGTERM save a checkpoint at the current
step before the command exits (code 130). When stderr is not a terminal (a log file), a progress line
is printed every 30 s (`--progress-every`), since the progress bar is off there.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from trm_core.cli_args import add_common, add_progress_flag, overrides, warn
from trm_core.errors import OneLineArgumentParser, UserError, probe_writable

RUN_FILES = ("config.yaml", "metrics.jsonl", "final.json", "checkpoints")
"""What a training run writes into its directory (--overwrite removes exactly these)."""


def register(subparsers) -> None:
    """Add the train and bench commands to `python -m trm_core`."""
    train = subparsers.add_parser("train", help="train a TRM", description="Train a TRM from a preset or YAML file.")
    train.add_argument("source", metavar="PRESET_OR_YAML", help="a preset name or a YAML config file")
    train.add_argument("--out", metavar="DIR", help="run directory (metrics.jsonl, final.json, checkpoints/); "
                       "must be new or empty unless --resume continues it; default with --resume RUN_DIR: RUN_DIR")
    train.add_argument("--resume", default=None, metavar="RUN_DIR_OR_CKPT",
                       help="a run directory (its latest readable checkpoint) or a checkpoint directory / checkpoint.pt")
    train.add_argument("--overwrite", action="store_true", help="replace the run already in --out (its run files are deleted)")
    add_progress_flag(train)
    add_common(train)
    train.set_defaults(func=cmd_train)

    bench = subparsers.add_parser("bench", help="benchmarks")
    kinds = bench.add_subparsers(dest="bench_kind", required=True, parser_class=OneLineArgumentParser)
    bt = kinds.add_parser("train", help="training throughput: puzzle-steps/s, FLOPs, eager vs compiled, fp32 vs bf16")
    bt.add_argument("--preset", required=True, help="a preset name or a YAML config file")
    bt.add_argument("--steps", type=int, default=20, help="timed optimiser steps per variant (after warm-up)")
    bt.add_argument("--warmup", type=int, default=3, help="untimed steps per variant")
    bt.add_argument("--variants", default="all", help="comma list of eager_fp32,compiled_fp32,eager_bf16,compiled_bf16")
    bt.add_argument("--peak-tflops", default=None, metavar="BF16,FP32",
                    help="the device's dense peak TFLOP/s for MFU (default: a table of common GPUs; on a CPU a "
                         "matmul probe measures the roofline)")
    bt.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the variants (median kept)")
    bt.add_argument("--chains", default="", metavar="K,K,...",
                    help="also time the first variant at these chain counts (same puzzles per step), e.g. 1,4")
    add_common(bt)
    bt.set_defaults(func=cmd_bench_train)


def _is_inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def prepare_run_dir(out: str | None, resume: Path | None, overwrite: bool) -> Path:
    """Check --out before any work: a new, empty or continued run directory we can write."""
    if out is None:
        if resume is None or resume.parent.name != "checkpoints":
            raise UserError("train needs --out DIR (a new or empty run directory), or --resume RUN_DIR to continue a run")
        out = str(resume.parent.parent)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the run")
    present = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    continuing = resume is not None and _is_inside(resume, path)
    if present and not continuing:
        foreign = [n for n in present if n not in RUN_FILES and not n.startswith(".")]
        if foreign:
            raise UserError(f"--out {out} is not empty and holds files that are not a trm_core run ({', '.join(foreign[:3])}"
                            f"{', ...' if len(foreign) > 3 else ''}): choose a new or empty directory")
        if not overwrite:
            raise UserError(f"--out {out} already holds a run ({', '.join(present)}): use `--resume {out}` to continue it"
                            f" or `--overwrite` to replace it")
        for name in present:
            target = path / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    try:
        probe_writable(path)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write the run directory: {exc.strerror or exc}") from None
    if continuing:
        _continue_in_place(path, resume)
    return path


def _continue_in_place(run: Path, resume: Path) -> None:
    """Resuming inside its own run: checkpoints newer than the resume point would outlive the new ones
    (keep_checkpoints prunes by step), and metrics.jsonl would repeat steps; so unreadable newer
    checkpoints are set aside as checkpoints/corrupt_step_*, readable ones refuse, and metrics
    logged after the resume point are dropped."""
    from trm_core.errors import write_text_atomic
    from trm_core.checkpoint import load_checkpoint, run_checkpoints

    step = int(load_checkpoint(resume)["step"])
    for newer in run_checkpoints(run):
        if newer.name <= resume.name:
            break
        try:
            load_checkpoint(newer)
        except UserError:
            newer.rename(newer.with_name(f"corrupt_{newer.name}"))
            continue
        raise UserError(f"--resume {resume} is older than {newer}, the run's latest checkpoint: resume from the run"
                        f" (`--resume {run}`) or branch into a new directory with --out NEW_DIR")
    metrics = run / "metrics.jsonl"
    if metrics.exists():
        kept = [line for line in metrics.read_text().splitlines(keepends=True) if _step_of(line) <= step]
        write_text_atomic(metrics, "".join(kept))


def _step_of(line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return float("inf")  # a torn last line (the run was killed mid-write) goes too


def finished_message(resume: Path, payload: dict, cfg) -> str | None:
    """Why the run at `resume` has nothing left to train under `cfg`, or None when it has."""
    step, t = int(payload["step"]), cfg.train
    if step >= t.steps:
        return f"already finished at step {step} (train.steps={t.steps}): raise train.steps to train further"
    if t.time_budget_s > 0 and float(payload.get("elapsed_s", 0)) >= t.time_budget_s:
        return (f"already finished at step {step}: its time budget (train.time_budget_s={t.time_budget_s:g}) is spent;"
                f" raise train.time_budget_s to train further")
    final = _final_of(resume)
    if t.target_exact_acc > 0 and final.get("step") == step and final.get("eval/exact_acc", 0) >= t.target_exact_acc:
        return (f"already finished at step {step}: eval/exact_acc reached train.target_exact_acc={t.target_exact_acc:g};"
                f" raise it to train further")
    return None


def _final_of(resume: Path) -> dict:
    """final.json of the run a checkpoint belongs to (RUN/checkpoints/step_N), or {}."""
    try:
        return json.loads((resume.parent.parent / "final.json").read_text())
    except (OSError, ValueError):
        return {}


FINAL_KEYS = ["step", "eval/exact_acc", "eval/cell_acc", "eval/halted_exact_acc", "eval/avg_steps", "time/elapsed_s"]


def cmd_train(args) -> int:
    from trm_core.cli import data_build_command
    from trm_core.config import load_config
    from trm_core.checkpoint import load_checkpoint, resolve_resume
    from trm_core.names import check_names

    cfg = load_config(args.source, overrides(args))
    check_names(cfg)  # every registry name, before a run directory is touched
    if cfg.data.path and not Path(cfg.data.path).expanduser().exists():
        raise UserError(f"data.path={cfg.data.path} does not exist; build it with: {data_build_command(cfg.data)}")
    resume = None
    if args.resume is not None:
        resume = resolve_resume(args.resume, warn=warn)
        payload = load_checkpoint(resume)  # a missing or unreadable checkpoint fails here, before any work
        resume = resume if resume.is_dir() else resume.parent
        done = finished_message(resume, payload, cfg)
        if done:  # a second final evaluation would only duplicate the last one: change nothing
            run = resume.parent.parent if resume.parent.name == "checkpoints" else resume
            sys.stderr.write(f"nothing to train: {run} {done} (--set KEY=VALUE); the run is unchanged\n")
            final = _final_of(resume)
            print(json.dumps({k: final[k] for k in FINAL_KEYS if k in final} or {"step": int(payload["step"])}))
            return 0
    created = args.out is not None and not Path(args.out).exists()
    out = prepare_run_dir(args.out, resume, args.overwrite)
    try:
        return _train(cfg, out, resume, args.progress_every)
    except UserError:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # failed before writing anything (a checkpoint that does not fit): leave nothing behind
        raise


def _train(cfg, out: Path, resume: Path | None, progress_every: float) -> int:
    from trm_core.train.loop import train
    from trm_core.train.signals import Stopped, StopSignals

    try:
        with StopSignals(), Heartbeat(out / "metrics.jsonl", cfg.train.steps, progress_every):
            final = train(cfg, out_dir=out, resume_from=resume, progress=True)
    except Stopped as stop:
        sys.stderr.write(f"\n{stop}; continue with the same command and --resume {out}\n")
        return 130
    print(json.dumps({k: final[k] for k in FINAL_KEYS if k in final}))
    return 0


class Heartbeat:
    """A progress line every `interval_s` seconds on a stream that is not a terminal.

    There the progress bar is off (tqdm draws only on terminals) and `train` would print only its
    evaluation lines, 40-75 s apart on a CPU. The line reports the run's last logged step (its
    metrics.jsonl, a line every train.log_interval steps), the loss, the rate since this command
    started and the time left at that rate. On a terminal it does nothing: the bar is there.
    """

    def __init__(self, metrics_file: Path, steps: int, interval_s: float, stream=None):
        self.metrics_file, self.steps, self.interval_s = Path(metrics_file), steps, interval_s
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._first: tuple[int, float] | None = None  # (step, when) of the first line seen: the rate's origin

    def __enter__(self) -> "Heartbeat":
        if self.interval_s > 0 and not self.stream.isatty():
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self._t0
        last = last_logged(self.metrics_file)
        if last is None:
            return f"progress: starting (data, model), {elapsed:.0f} s"
        step = int(last.get("step", 0))
        self._first = self._first or (step, time.monotonic())
        text = f"progress: step {step}/{self.steps} ({100 * step / max(self.steps, 1):.0f}%)"
        if "train/loss" in last:
            text += f", loss {last['train/loss']:.4f}, train exact {last.get('train/exact_acc', float('nan')):.3f}"
        text += f", {elapsed:.0f} s"
        first_step, first_at = self._first
        if step > first_step:
            left = (self.steps - step) * (time.monotonic() - first_at) / (step - first_step)
            text += f", ~{left:.0f} s left"
        return text


def last_logged(metrics_file: Path) -> dict | None:
    """The last complete JSON line of a metrics.jsonl (read from its end), or None."""
    try:
        with open(metrics_file, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            lines = f.read().splitlines()
    except OSError:
        return None
    for raw in reversed(lines):
        try:
            return json.loads(raw)
        except ValueError:
            continue  # a line being written
    return None


def cmd_bench_train(args) -> int:
    from trm_core.train.bench import bench_train

    try:
        chains = [int(k) for k in args.chains.split(",")] if args.chains else []
    except ValueError:
        raise UserError(f"--chains must be a comma list of integers, but got {args.chains!r}") from None
    bench_train(args.preset, overrides(args), steps=args.steps, warmup=args.warmup, variants=args.variants,
                out=sys.stdout, peak=args.peak_tflops, rounds=args.rounds, chains=chains)
    return 0
