"""Spec errors: one line naming the file, the key path, what must hold and what was given."""

from __future__ import annotations

import difflib
from typing import Iterable

from trm_core.errors import UserError


class SpecError(UserError):
    """A sweep spec that does not validate. Printed as `error: FILE: KEY.PATH: message` (exit 2)."""

    def __init__(self, file: str, path: str, message: str):
        self.file, self.path = file, path
        where = f"{file}: {path}: " if path else f"{file}: "
        super().__init__(where + message)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe(value: object) -> str:
    """`0.5 (float)` - what was given, for 'but got ...'."""
    return f"{value!r} ({type(value).__name__})"
