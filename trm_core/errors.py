"""User-facing errors: one line, exit code 2, never a traceback.

Library code raises `UserError` (or `ConfigError`, a subclass) with a message that says what must
hold and what was given. Command lines catch it in `run_cli` and print `error: <message>`.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user (file, flag, config key, data row). Message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(UserError, ValueError):
    """A config key, value or type that does not fit the config tree."""


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: the run stops itself (`step`, `reason` say where and why)."""

    def __init__(self, step: int, reason: str):
        self.step, self.reason = step, reason
        super().__init__(f"training diverged at step {step}: {reason}")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest known name, or '' when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a small result file so readers see the old or the new content, never half of it.

    A failed write (disk full, file too large) leaves the old file as it was and no temp file, and
    raises a one-line UserError naming the file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; its previous content is kept") from None
    finally:
        tmp.unlink(missing_ok=True)


def probe_writable(folder: str | os.PathLike) -> None:
    """Create `folder` (and missing parents), then write and remove a file in it: an OSError now rather
    than after hours of work. Callers turn the OSError into their own one-line UserError."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".write_probe.{os.getpid()}"
    probe.write_text("")
    probe.unlink()


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line (`error: ...`) and exits 2, without the usage block."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"error: {self.prog}: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def _key_value(text: str) -> str:
    if "=" not in text or text.startswith("="):
        raise argparse.ArgumentTypeError(
            f"--set takes KEY=VALUE, but got {text!r} (positional arguments go before --set)")
    return text


def add_set_flag(parser: argparse.ArgumentParser, dest: str, help: str) -> None:
    """`--set k=v [k=v ...]`, repeatable: one grammar for `python -m trm_core` and `python -m sweeper`."""
    parser.add_argument("--set", dest=dest, action="extend", nargs="+", type=_key_value, default=[],
                        metavar="KEY=VALUE", help=help)


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
