"""One Aim run per trial: its name, tags and params, and what is tracked in it.

A run holds the hparams (the trial's sampled and constant keys, plus its seed), the sweep's name, the
trial id, the seed, the configuration id shared by the seeds of one sampled configuration, the phase,
the full resolved trainer config, and every metric the trainer reports: `train/loss` is tracked as
`loss` in context {subset: train}, `eval/exact_acc` as `exact_acc` in {subset: eval}, against the
trainer's `step`. A non-scalar metric (an evaluation table) is tracked as aim.Text holding its JSON.
A trial's test-time scaling plot data (`eval_tts_figures`, sweeper.run.trainable) becomes aim.Image
figures in context {subset: eval_tts}, drawn by trm_core.infer.plots.

A trial's run is named `SWEEP/CONFIG_ID/seedN` (`SWEEP/PHASE/CONFIG_ID/seedN` in a replicate phase)
and tagged `sweep:SWEEP`, `phase:PHASE` (search, replicate_N) and `config:CONFIG_ID`, so Aim's UI
groups the seeds of a configuration, or a sweep's phases, in one click (tags, or the param
`sweep.config_id`). Runs of a replicate phase also carry the tag `replicate`.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import aim

from trm_core.infer.plots import figures

from sweeper.run.sweeps import SEARCH
from sweeper.run.trial import TrialSetup


def metric_keys(result: dict[str, Any]) -> list[str]:
    """The trainer's metric keys in a Tune result (namespaced `train/...`, `eval/...`)."""
    return [k for k in result if "/" in k and not k.startswith(("config/", "trial/"))]


def split_key(key: str) -> tuple[str, dict[str, str]]:
    """'eval/halt_first/exact_acc' -> ('halt_first/exact_acc', {'subset': 'eval'})."""
    head, _, rest = key.partition("/")
    return (rest, {"subset": head}) if rest else (key, {})


CLOSE_TIMEOUT_S = 60.0


def close_run(run: Any, timeout_s: float = CLOSE_TIMEOUT_S, repo_failed: bool = False) -> None:
    """run.close(), which in Aim 3.29 never returns once the repo has refused a write (read-only, full):
    the run's status reporter thread dies on the OSError, and close() waits for it to flush, as does
    its heartbeat thread. So a reporter whose thread has died is dropped with its heartbeat first (the
    run's data, end time and lock are closed as usual), and close() runs in a thread: one that has not
    returned after `timeout_s` (the repo refused a write while closing) is an OSError for the caller.
    `repo_failed`: the repo refused a write already, so the reporter is dropped even if its thread lives."""
    resources = getattr(run, "_resources", None)
    writer = getattr(getattr(resources, "_checkins", None), "thread", None)
    if writer is not None and (repo_failed or not writer.is_alive()):
        resources._checkins = resources._heartbeat = None
    failed: list[BaseException] = []

    def close() -> None:
        try:
            run.close()
        except BaseException as exc:  # handed to the caller below
            failed.append(exc)

    closer = threading.Thread(target=close, name="aim-close", daemon=True)
    closer.start()
    closer.join(timeout_s)
    if closer.is_alive():
        raise OSError(f"Aim did not close run {run.hash} within {timeout_s:g} s (its repo refused a write)")
    if failed:
        raise failed[0]


def archive_orphan(run: Any, **close) -> None:
    """Close a run whose trial the sweep no longer has as `orphaned`, archived (hidden from the UI's
    list and from query_runs). `close`: close_run's arguments."""
    run["status"] = "orphaned"
    run.archived = True
    close_run(run, **close)


def track_figures(run: Any, data: dict[str, Any], step: int) -> None:
    """The test-time scaling plots (accuracy vs depth / breadth / NFE, halting, residuals) as aim.Image."""
    import matplotlib.pyplot as plt  # pyplot (heavy) only in sweeps with final_eval; figures() loaded it already

    for name, fig in figures(data).items():
        run.track(aim.Image(fig), name=name, step=step, context={"subset": "eval_tts"})
        plt.close(fig)


def track_result(run, result: dict[str, Any], keys: list[str]) -> int:
    """Track one Tune result's metrics against the trainer's step; returns the step."""
    step = int(result.get("step", result.get("training_iteration", 0)))
    for key in keys:
        value = result[key]
        name, context = split_key(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                run.track(float(value), name=name, step=step, context=context)
        else:
            run.track(aim.Text(json.dumps(value, default=str)), name=name, step=step, context=context)
    run["last_step"] = step
    return step


def run_name(sweep: str, setup: TrialSetup, phase: str | None = None) -> str:
    """`SWEEP/CONFIG_ID/seedN`, with the phase after the sweep outside the search: seeds of a
    configuration sit side by side in Aim's run list."""
    middle = f"{phase}/" if phase and phase != SEARCH else ""
    return f"{sweep}/{middle}{setup.config_id}/seed{setup.seed}"


def tags(sweep: str, phase: str, config_id: str | None = None) -> list[str]:
    return [f"sweep:{sweep}", f"phase:{phase}"] + ([f"config:{config_id}"] if config_id else [])


def new_run(repo: str, experiment: str, sweep: str, trial_id: str, setup: TrialSetup, phase: str | None = None):
    phase = phase or SEARCH
    run = aim.Run(repo=repo, experiment=experiment, system_tracking_interval=None, capture_terminal_logs=False)
    run.name = run_name(sweep, setup, phase)
    run["hparams"] = setup.hparams
    run["sweep"] = {"name": sweep, "trial_id": trial_id, "seed": setup.seed, "config_id": setup.config_id,
                    "phase": phase}
    for tag in tags(sweep, phase, setup.config_id) + (["replicate"] if phase != SEARCH else []):
        run.add_tag(tag)
    run["config"] = setup.config
    return run


def open_run(repo: str, run_hash: str):
    return aim.Run(run_hash=run_hash, repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
