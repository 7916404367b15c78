"""Spec errors: one line naming the file, the key path, what must hold and what was given."""

from __future__ import annotations

from trm_core.errors import UserError, did_you_mean  # noqa: F401  (re-exported for the sweeper)


class SpecError(UserError):
    """A sweep spec that does not validate. Printed as `error: FILE: KEY.PATH: message` (exit 2)."""

    def __init__(self, file: str, path: str, message: str):
        self.file, self.path = file, path
        where = f"{file}: {path}: " if path else f"{file}: "
        super().__init__(where + message)


def describe(value: object) -> str:
    """`0.5 (float)` - what was given, for 'but got ...'."""
    return f"{value!r} ({type(value).__name__})"
