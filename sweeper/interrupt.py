"""How the driver stops: Ctrl-C (SIGINT) or SIGTERM ends a sweep cleanly and it says how to resume.

Ray Tune's own SIGINT handler (installed inside `Tuner.fit`) stops the trials, saves the experiment
state once more and logs a hint to call `Tuner.restore`. We keep that handler (it is what makes a
Ctrl-C resumable) and watch its log records: the first one sets `INTERRUPTED`, so the callbacks
label in-flight trials `interrupted` rather than `stopped_early`; Ray's restore hint and its list of
incomplete trials are dropped, since `runner.print_summary` prints `python -m sweeper resume NAME`.
SIGTERM (a job scheduler, `kill`) is turned into SIGINT so it takes the same path.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

INTERRUPTED = threading.Event()

_TUNE_LOGGER = "ray.tune.tune"
_STOP_RECEIVED = "Stop signal received"
_DROPPED = ("Resume experiment with", "Resume training with", "Trials did not complete")


class _TuneMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith(_STOP_RECEIVED):
            INTERRUPTED.set()
            sys.stderr.write("\ninterrupted: stopping the trials and saving the sweep state"
                             " (press Ctrl-C again to skip)\n")
            return False
        return not (INTERRUPTED.is_set() and any(s in text for s in _DROPPED))


_FILTER = _TuneMessages()
_saved: dict[int, object] = {}


def _sigterm_as_sigint(signum, frame) -> None:
    os.kill(os.getpid(), signal.SIGINT)


def install() -> None:
    """Before a sweep: clear the flag, watch Tune's messages, route SIGTERM to SIGINT (main thread only)."""
    INTERRUPTED.clear()
    logger = logging.getLogger(_TUNE_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    if threading.current_thread() is threading.main_thread():
        _saved.update({signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.getsignal(signal.SIGTERM)})
        signal.signal(signal.SIGTERM, _sigterm_as_sigint)


def uninstall() -> None:
    """After a sweep: stop watching, and put back the SIGINT/SIGTERM handlers (Tune leaves its own)."""
    logging.getLogger(_TUNE_LOGGER).removeFilter(_FILTER)
    if threading.current_thread() is threading.main_thread():
        for signum, handler in _saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        _saved.clear()


def interrupted() -> bool:
    return INTERRUPTED.is_set()
