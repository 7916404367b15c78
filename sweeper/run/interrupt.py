"""How the driver stops: Ctrl-C (SIGINT) or SIGTERM ends a sweep cleanly and it says how to resume;
and how Tune's messages reach the user: a failed trial is one line (its reason), not a traceback.

Ray Tune's own SIGINT handler (installed inside `Tuner.fit`) stops the trials, saves the experiment
state once more and logs a hint to call `Tuner.restore`. We keep that handler (it is what makes a
Ctrl-C resumable) and watch its log records: the first one sets `INTERRUPTED`, so the callbacks
label in-flight trials `interrupted` rather than `stopped_early`; Ray's restore hint and its list of
incomplete trials are dropped, since the runner's summary prints `python -m sweeper resume NAME`.
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


class _OneLineErrors(logging.Filter):
    """Tune logs some errors with a whole traceback; keep the message and the exception's last line.

    - `Trial task failed for trial ...`: the worker's traceback; its last line is the exception and its
      message, e.g. `TrialFailed: out of memory at step 0 (seed 1): ...`. The traceback stays in the
      trial's error.txt (results.csv's `error` column shows the same line).
    - `Saving experiment state to storage at ... failed with exception:`: Tune copies its staging
      folder on the driver to storage in a background thread while its next save renames files there
      (Ray 2.60, experiment_state.py); a file renamed mid-copy fails that copy. The next save copies
      again, so it is one line, as a warning.
    """

    PREFIXES = ("Trial task failed for trial", "Saving experiment state to storage")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None and text.startswith(self.PREFIXES):
            exc = record.exc_info[1]
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            last = lines[-1] if text.startswith(self.PREFIXES[0]) else f"{type(exc).__name__}: {lines[-1]}"
            record.msg, record.args = f"{text.rstrip(': ')}: {last[:300]}", ()
            record.exc_info = record.exc_text = None
            if text.startswith(self.PREFIXES[1]):
                record.msg += " (the next save of the experiment state copies it again)"
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_FILTER = _TuneMessages()
_ERRORS = _OneLineErrors()
_ERROR_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.execution.experiment_state")
_saved: dict[int, object] = {}


def _sigterm_as_sigint(signum, frame) -> None:
    os.kill(os.getpid(), signal.SIGINT)


def install(verbose: bool = False) -> None:
    """Before a sweep: clear the flag, watch Tune's messages, route SIGTERM to SIGINT (main thread only).
    `verbose` keeps Tune's tracebacks of failed trials."""
    INTERRUPTED.clear()
    logger = logging.getLogger(_TUNE_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    for name in _ERROR_LOGGERS if not verbose else ():
        if _ERRORS not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_ERRORS)
    if threading.current_thread() is threading.main_thread():
        _saved.update({signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.getsignal(signal.SIGTERM)})
        signal.signal(signal.SIGTERM, _sigterm_as_sigint)


def uninstall() -> None:
    """After a sweep: stop watching, and put back the SIGINT/SIGTERM handlers (Tune leaves its own)."""
    logging.getLogger(_TUNE_LOGGER).removeFilter(_FILTER)
    for name in _ERROR_LOGGERS:
        logging.getLogger(name).removeFilter(_ERRORS)
    if threading.current_thread() is threading.main_thread():
        for signum, handler in _saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        _saved.clear()


def interrupted() -> bool:
    return INTERRUPTED.is_set()
