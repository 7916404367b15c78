"""User-facing errors: one line, exit code 2, never a traceback.

Library code raises `UserError` (or `ConfigError`, a subclass) with a message that says what must
hold and what was given. Command lines catch it in `run_cli` and print `error: <message>`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user (file, flag, config key, data row). Message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(UserError, ValueError):
    """A config key, value or type that does not fit the config tree."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line (`error: ...`) and exits 2, without the usage block."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"error: {self.prog}: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point; turn UserError into one line on stderr and exit code 2."""
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
