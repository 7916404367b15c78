"""A trial's worker that gets SIGTERM saves the step it reached before it goes.

A preempted node (Ray's node shutdown, `ray stop`, a Kubernetes pod eviction, a spot reclaim)
delivers SIGTERM to the trial's worker process, then SIGKILL after a grace period. Ray's worker
handles SIGTERM by exiting at once (`ray._private.worker.Worker.main_loop`), so a trial lost every
step since its last periodic checkpoint: up to one `train.eval_interval`, about an hour of GPU time
at paper scale.

`install()`, run when a worker imports the trainable (on its main thread, where Python handles
signals), puts a handler in front of Ray's. While a trial trains in that process, the first SIGTERM
only asks the trainer to stop (trm_core.train.signals.request_stop): it finishes the step in
progress (with its evaluation, if that step has one), writes a checkpoint at that step and raises
`Stopped`; the trial (sweeper.run.trainable) reports that checkpoint to Tune, so a retry starts from
it on any node, and then fails with `TrialPreempted`, which Tune retries (`failure.max_retries`).
How long this takes at most, as measured so far, is in every evaluation's `time/stop_grace_s`
(one training step + one evaluation + one checkpoint write); a grace period shorter than that may
end in SIGKILL, and the trial then resumes from its last periodic checkpoint as before.

A SIGTERM when no trial trains in the process, or a second one, goes to Ray's handler at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from typing import Iterator

from trm_core.train import signals  # the trainer's stop flag (no torch: trm_core.train loads `train` lazily)

log = logging.getLogger("sweeper.trial")

_TRAINING = threading.Event()
_previous: list = []
"""Ray's SIGTERM handler, once install() put ours in front of it."""
_received_at: list[float] = []


class TrialPreempted(RuntimeError):
    """The trial stopped on SIGTERM after saving (and reporting) a checkpoint: Tune retries it from there."""


def in_ray_worker() -> bool:
    """True in a Ray worker process (not the driver, not a plain Python process)."""
    try:
        import ray  # loaded already in a worker; elsewhere this module must not start it

        return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE
    except Exception:  # an older or newer Ray without these attributes: leave its handler alone
        return False


def install() -> bool:
    """Put our SIGTERM handler in front of the worker's; True when it did (main thread of a Ray worker)."""
    if _previous or threading.current_thread() is not threading.main_thread() or not in_ray_worker():
        return bool(_previous)
    _previous.append(signal.getsignal(signal.SIGTERM))
    signal.signal(signal.SIGTERM, _handle)
    return True


def _handle(signum, frame) -> None:
    if _TRAINING.is_set() and signals.request_stop(signum):
        _received_at.append(time.monotonic())
        log.warning("SIGTERM: the trial stops after the step in progress and saves a checkpoint there"
                    " (a second SIGTERM ends the worker at once)")
        return
    previous = _previous[0] if _previous else signal.SIG_DFL
    if callable(previous):
        previous(signum, frame)
    elif previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


@contextlib.contextmanager
def training() -> Iterator[None]:
    """While the trainer runs: a SIGTERM asks it to stop with a checkpoint instead of ending the worker."""
    signals.clear()
    _received_at.clear()
    _TRAINING.set()
    try:
        yield
    finally:
        _TRAINING.clear()
        signals.clear()  # (the time of the signal stays, for the trial's message)


def seconds_since_signal() -> float | None:
    """Seconds from the SIGTERM to now (how long the stop took), or None when none came."""
    return time.monotonic() - _received_at[0] if _received_at else None
