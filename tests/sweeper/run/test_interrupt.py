"""Tune's errors that reach the user as one line (sweeper.run.interrupt): the loggers and messages of
Ray 2.60's Tune, logged as Tune logs them (with exc_info)."""

from __future__ import annotations

import logging

import pytest

from sweeper.run import interrupt


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def tune_logs():
    """Records of Tune's two loggers with the sweep's filters installed (removed after)."""
    handler = _Lines()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    loggers = [logging.getLogger(n) for n in ("ray.tune.execution.experiment_state", "ray.tune.execution.tune_controller")]
    for lg in loggers:
        lg.addHandler(handler)
    interrupt.install()
    try:
        yield loggers, handler
    finally:
        interrupt.uninstall()
        for lg in loggers:
            lg.removeHandler(handler)


def _log_with_traceback(logger: logging.Logger, message: str, exc: Exception) -> None:
    try:
        raise exc
    except Exception:
        logger.error(message, exc_info=True)


def test_a_failed_copy_of_the_experiment_state_is_one_warning(tune_logs):
    (state, _), handler = tune_logs
    _log_with_traceback(state, "Saving experiment state to storage at '/s/tune' failed with exception: ",
                        FileNotFoundError("[Errno 2] Failed to open local file '/tmp/ray/x/.tmp1'.\nDetail: [errno 2] No such file"))
    text = handler.format(handler.records[-1])
    assert "\n" not in text and "Traceback" not in text, text
    assert text.startswith("WARNING Saving experiment state to storage at '/s/tune' failed with exception: FileNotFoundError:")
    assert "No such file" in text and "the next save" in text


def test_a_failed_trial_is_its_last_line(tune_logs):
    (_, controller), handler = tune_logs
    _log_with_traceback(controller, "Trial task failed for trial run_trial_1",
                        RuntimeError("worker traceback\n  File x\nTrialFailed: out of memory at step 0 (seed 1)"))
    text = handler.format(handler.records[-1])
    assert text == "ERROR Trial task failed for trial run_trial_1: TrialFailed: out of memory at step 0 (seed 1)"


def test_other_errors_keep_their_traceback(tune_logs):
    (state, _), handler = tune_logs
    _log_with_traceback(state, "Something else failed", ValueError("boom"))
    assert "Traceback" in handler.format(handler.records[-1])


def test_verbose_keeps_every_traceback():
    interrupt.install(verbose=True)
    try:
        assert not logging.getLogger("ray.tune.execution.experiment_state").filters
    finally:
        interrupt.uninstall()
