"""`python -m trm_core train | bench train`: thin command lines over trm_core.train.

    python -m trm_core train PRESET_OR_YAML [--set k=v ...] --out DIR [--resume CKPT] [--device D]
    python -m trm_core bench train --preset P [--set k=v ...] [--steps N] [--device D]

(`eval` lives in trm_core.infer.cli: the trainer's evaluation, or the test-time scaling engine.)

Config precedence: --set > YAML file > the preset it names > defaults; --device is `--set device=D`.
"""

from __future__ import annotations

import argparse
import json
import sys

from trm_core.errors import OneLineArgumentParser


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted), e.g. --set optim.lr=3e-4 train.steps=100")
    p.add_argument("--device", default=None, help="auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps")


def register(subparsers) -> None:
    """Add the train and bench commands to `python -m trm_core`."""
    train = subparsers.add_parser("train", help="train a TRM", description="Train a TRM from a preset or YAML file.")
    train.add_argument("source", metavar="PRESET_OR_YAML", help="a preset name or a YAML config file")
    train.add_argument("--out", required=True, metavar="DIR", help="run directory (metrics.jsonl, final.json, checkpoints/)")
    train.add_argument("--resume", default=None, metavar="CKPT", help="checkpoint directory (or its checkpoint.pt)")
    _add_common(train)
    train.set_defaults(func=cmd_train)

    bench = subparsers.add_parser("bench", help="benchmarks")
    kinds = bench.add_subparsers(dest="bench_kind", required=True, parser_class=OneLineArgumentParser)
    bt = kinds.add_parser("train", help="training throughput: puzzle-steps/s, FLOPs, eager vs compiled, fp32 vs bf16")
    bt.add_argument("--preset", required=True, help="a preset name or a YAML config file")
    bt.add_argument("--steps", type=int, default=20, help="timed optimiser steps per variant (after warm-up)")
    bt.add_argument("--warmup", type=int, default=3, help="untimed steps per variant")
    bt.add_argument("--variants", default="all", help="comma list of eager_fp32,compiled_fp32,eager_bf16,compiled_bf16")
    _add_common(bt)
    bt.set_defaults(func=cmd_bench_train)


def _overrides(args) -> list[str]:
    return list(args.overrides) + ([f"device={args.device}"] if args.device else [])


def cmd_train(args) -> int:
    from trm_core.config import load_config
    from trm_core.train.loop import train

    cfg = load_config(args.source, _overrides(args))
    final = train(cfg, out_dir=args.out, resume_from=args.resume, progress=True)
    keys = ["step", "eval/exact_acc", "eval/cell_acc", "eval/halted_exact_acc", "eval/avg_steps", "time/elapsed_s"]
    print(json.dumps({k: final[k] for k in keys if k in final}))
    return 0


def cmd_bench_train(args) -> int:
    from trm_core.train.bench import bench_train

    bench_train(args.preset, _overrides(args), steps=args.steps, warmup=args.warmup, variants=args.variants,
                out=sys.stdout)
    return 0
