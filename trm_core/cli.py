"""`python -m trm_core {data,train,eval,bench,keys} ...`: each command group registers its own subparser."""

from __future__ import annotations

import shlex
import signal
import sys
from typing import Any, Sequence

from trm_core.errors import OneLineArgumentParser, run_cli


def build_parser() -> OneLineArgumentParser:
    from trm_core import keys
    from trm_core.data import cli as data_cli
    from trm_core.infer import cli as infer_cli
    from trm_core.train import cli as train_cli

    parser = OneLineArgumentParser(prog="python -m trm_core", description="Tiny Recursive Models: data, training, evaluation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    data_cli.register(sub)
    train_cli.register(sub)
    infer_cli.register(sub)
    keys.register(sub)
    return parser


def data_build_command(data: Any, out: str | None = None) -> str:
    """The complete `python -m trm_core data build ...` that makes the dataset a DataConfig describes,
    written to `out` (default: data.path, else data/TASK-SIZE): what an error about missing data says."""
    out = shlex.quote(str(out or data.path or f"data/{data.task}-{data.board_size}"))
    if data.task == "sudoku-extreme":
        src = "data/sudoku-extreme"
        return (f"python -m trm_core data download sudoku-extreme --dir {src} (needs huggingface_hub and a network),"
                f" then python -m trm_core data build sudoku-extreme --csv {src}/train.csv --test-csv {src}/test.csv"
                f" --subsample {data.n_train} --seed {data.data_seed} --out {out}")
    if data.task == "maze" and not data.generated_ok:
        return f"python -m trm_core data build maze-csv --csv TRAIN.csv --test-csv TEST.csv --out {out}"
    rating = f" --min-rating {data.min_rating}" if data.task == "sudoku" and data.min_rating else ""
    return (f"python -m trm_core data build {data.task} --size {data.board_size} --train {data.n_train}"
            f" --test {data.n_test}{rating} --seed {data.data_seed} --out {out}")


def honour_sigint() -> None:
    """Make SIGINT interrupt this process even when it started with SIGINT ignored.

    A shell without job control (a script, `sh -c 'cmd &'`) starts background commands with SIGINT
    set to SIG_IGN, and Python keeps an inherited SIG_IGN: such a `train` ignored every SIGINT until
    its stop handler was installed, seconds later (after torch was imported), then trained to the
    end. Restoring Python's own handler first thing gives the same behaviour however the command was
    started: a SIGINT before training raises KeyboardInterrupt (exit 130, nothing written), one
    during training saves a checkpoint (trm_core.train.signals).
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def entry() -> None:
    honour_sigint()  # before the imports of build_parser (torch): they take seconds
    sys.exit(run_cli(main))
