"""Flags and helpers every command line shares (`python -m trm_core train | eval | bench` and
`python -m sweeper`): one grammar for `--set`, `--device` and `--progress-every` everywhere."""

from __future__ import annotations

import argparse
import sys

from trm_core.errors import add_set_flag


def add_common(p: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE ...` and `--device D`."""
    add_set_flag(p, "overrides", "override a config key (dotted), e.g. --set optim.lr=3e-4 train.steps=100")
    p.add_argument("--device", default=None, help="auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps")


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    """`--progress-every SECONDS`: one grammar for `python -m trm_core train` and `python -m sweeper`."""
    p.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                   help="when the output is not a terminal (a log file), print a progress line this often"
                        " (default 30; 0: only the usual lines)")


def overrides(args) -> list[str]:
    """The config overrides of add_common's flags: --set's, then --device as `device=D`."""
    return list(args.overrides) + ([f"device={args.device}"] if args.device else [])


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
