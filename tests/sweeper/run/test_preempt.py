"""SIGTERM in a trial's worker (sweeper.run.preempt): while a trial trains, the first SIGTERM asks the
trainer to stop after the step in progress, which then writes a checkpoint at that step (the
convention of Kubernetes' and Ray Train's preemption: SIGTERM, save, exit before the SIGKILL); a
second SIGTERM, or one while nothing trains, goes to the worker's own handler (Ray's: exit now).
Real signals to this process, a real trainer."""

from __future__ import annotations

import os
import signal

import pytest

from sweeper.run import preempt
from trm_core.train import signals


@pytest.fixture
def ray_like_handler():
    """Our handler in front of a stand-in for Ray's (which would end the worker), as install() does in a worker."""
    calls: list[int] = []
    old = signal.getsignal(signal.SIGTERM)
    preempt._previous[:] = [lambda signum, frame: calls.append(signum)]
    signal.signal(signal.SIGTERM, preempt._handle)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGTERM, old)
        preempt._previous.clear()
        signals.clear()


def test_sigterm_while_training_asks_the_trainer_to_stop_and_a_second_one_goes_to_ray(ray_like_handler):
    with preempt.training():
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.stop_requested() and ray_like_handler == []
        os.kill(os.getpid(), signal.SIGTERM)  # a second one: the worker's own handler, at once
        assert ray_like_handler == [signal.SIGTERM]
    assert not signals.stop_requested() and preempt.seconds_since_signal() >= 0


def test_sigterm_when_no_trial_trains_goes_to_ray_at_once(ray_like_handler):
    os.kill(os.getpid(), signal.SIGTERM)
    assert ray_like_handler == [signal.SIGTERM] and not signals.stop_requested()


def test_install_leaves_a_process_that_is_not_a_ray_worker_alone():
    before = signal.getsignal(signal.SIGTERM)
    assert preempt.install() is False and signal.getsignal(signal.SIGTERM) is before


def test_a_stop_request_during_a_step_checkpoints_that_step(tiny_config, tmp_path):
    """The request arrives while step 2 runs (here: in its evaluation's report); the loop finishes step 2,
    writes checkpoints/step_00000002 and raises Stopped(step=2) - not step 4, not the step before."""
    from trm_core.checkpoint import load_checkpoint
    from trm_core.train import train

    reports = []

    def report(metrics, checkpoint_dir):
        reports.append(metrics)
        signals.request_stop(signal.SIGTERM)

    with pytest.raises(signals.Stopped) as stop:
        train(tiny_config("train.steps=8", "train.eval_interval=2"), report=report, out_dir=tmp_path / "run")
    signals.clear()
    assert stop.value.step == 2 and stop.value.signame == "SIGTERM"
    assert load_checkpoint(stop.value.checkpoint)["step"] == 2
    assert [m["step"] for m in reports] == [2] and reports[0]["time/stop_grace_s"] > 0
