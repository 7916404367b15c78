"""Stop on SIGINT/SIGTERM with a checkpoint: a preempted or Ctrl-C'd run resumes where it stopped.

The command line wraps training in `StopSignals()`; the first SIGINT or SIGTERM only sets a flag,
the training loop sees it after the current step (`stop_requested()`), writes a checkpoint there
and raises `Stopped` (a KeyboardInterrupt, exit code 130). A second signal acts at once, as usual.
Library callers install nothing, so the flag never changes for them unless they call `request_stop`
(the sweeper's trial workers do, from their own SIGTERM handler: sweeper/run/preempt.py).
A command started with SIGINT ignored (a script's background job) gets Python's SIGINT handler back
first thing (trm_core.cli.honour_sigint), so these handlers behave the same however it was started.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable

_requested: list[int] = []


class Stopped(KeyboardInterrupt):
    """Training stopped on a signal after saving a checkpoint (or without one when there is no run dir)."""

    def __init__(self, step: int, checkpoint: str | None, signame: str):
        self.step, self.checkpoint, self.signame = step, checkpoint, signame
        where = f"checkpoint saved to {checkpoint}" if checkpoint else "no run directory, nothing saved"
        super().__init__(f"stopped by {signame} at step {step}: {where}")


def stop_requested() -> bool:
    return bool(_requested)


def request_stop(signum: int) -> bool:
    """Ask the running training loop to checkpoint after the step in progress and stop, as if `signum`
    had reached StopSignals. True for the first request, False when one was already pending."""
    first = not _requested
    _requested.append(signum)
    return first


def clear() -> None:
    """Forget a pending request (a process that trains several runs one after the other)."""
    _requested.clear()


class StopSignals:
    """`with StopSignals():` turns the first SIGINT/SIGTERM into a stop request (main thread only)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        request_stop(signum)
        self._restore()  # a second signal takes the default path (KeyboardInterrupt / termination)

    def _restore(self) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old.clear()

    def __enter__(self) -> "StopSignals":
        clear()
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._old[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
        clear()


def save_and_stop(step: int, save: Callable[[], str] | None) -> None:
    """Called by the loop when a stop was requested: checkpoint (`save`, when the run has a place for
    checkpoints), then raise Stopped."""
    signame = signal.Signals(_requested[0]).name if _requested else "signal"
    raise Stopped(step, save() if save else None, signame)
