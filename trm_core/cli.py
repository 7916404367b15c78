"""`python -m trm_core {data,train,eval,bench,keys} ...`: each command group registers its own subparser."""

from __future__ import annotations

import sys
from typing import Sequence

from trm_core.errors import OneLineArgumentParser, run_cli


def build_parser() -> OneLineArgumentParser:
    from trm_core import keys
    from trm_core.data import cli as data_cli
    from trm_core.train import cli as train_cli

    parser = OneLineArgumentParser(prog="python -m trm_core", description="Tiny Recursive Models: data, training, evaluation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    data_cli.register(sub)
    train_cli.register(sub)
    keys.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def entry() -> None:
    sys.exit(run_cli(main))
