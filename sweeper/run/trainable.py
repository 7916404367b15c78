"""The Ray Tune function trainable: one trial = `trm_core` training of one configuration and seed.

No training logic lives here. The trial's config (sampled keys, constants and the Repeater's
`__trial_index__`) is applied on top of the sweep's base config by sweeper.run.trial.SweepBase,
which also picks the seed from the spec's list by the repeat index; the trainer's
`report(metrics, checkpoint_dir)` becomes `tune.report(metrics, checkpoint=...)`, which feeds ASHA (on `step`) and makes retries resume
from the last checkpoint through `train(resume_from=...)`. With the spec's `final_eval`, the
trainer's final report (the one with `final/*` metrics) first runs the test-time scaling engine
(trm_core.infer) on its checkpoint and also carries `eval_tts/...` and the plot data for Aim
(`eval_tts_figures`); so ASHA's stop at max_t comes after it.

Faults: a trial whose loss turns NaN/inf reports `trial/diverged` (the step and reason) as its last
result and ends; it has no metric there, so ASHA ignores it and Optuna is told the configuration
failed (sweeper.spec.optuna_space.SeedRepeater). Running out of memory fails the trial with a one-line
reason (Tune retries it up to failure.max_retries). A checkpoint that cannot be read (corrupt, truncated)
is reported and the previous readable one is used. A SIGTERM to the worker (a preempted node) makes
the trainer checkpoint the step it reached; that checkpoint is reported (result key `trial/preempted`)
and the trial fails with TrialPreempted, so Tune retries it from there (sweeper.run.preempt). Every
result of a worker that went on from a checkpoint carries its step, `trial/resumed_at_step`; when
that checkpoint is the trainer's own and Tune never got its evaluation (the trial stopped in between),
that evaluation is reported first (`unreported_evaluation`).
`SWEEPER_INJECT_FAULT` simulates faults for the reliability tests (see `inject_fault`).

Ray imports this module in each worker before its trial starts, and starts at most as many workers at
once as the node has CPUs; so torch and the trainer are imported inside the functions, when the trial
runs, and trials start together (tests/sweeper/test_layout.py keeps this module light).
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NamedTuple

from ray import tune

from trm_core.errors import TrainingDiverged, UserError
from trm_core.train.signals import Stopped

from sweeper.run import preempt
from sweeper.run.trial import DIVERGED_KEY, PREEMPTED_KEY, RESUMED_KEY, SweepBase, trial_folder

log = logging.getLogger("sweeper.trial")
_SAID_CPU_FALLBACK = False
preempt.install()  # a worker imports this module on its main thread: SIGTERM saves the step (preempt.py)


def pick_device(gpu: float) -> str:
    """cpu for CPU trials (they must not touch a GPU); cuda (the one Ray assigned) for GPU trials."""
    global _SAID_CPU_FALLBACK
    if gpu <= 0:
        return "cpu"
    import torch  # in the trial, not at the worker's start (module docstring)

    if torch.cuda.is_available():
        return "cuda"  # Ray set CUDA_VISIBLE_DEVICES to this trial's GPU(s)
    if not _SAID_CPU_FALLBACK:
        log.warning("trial asked for %g GPU but CUDA is not available here (logical GPU): training on cpu", gpu)
        _SAID_CPU_FALLBACK = True
    return "cpu"


def set_threads(cpu: float) -> int:
    import torch  # in the trial, not at the worker's start (module docstring)

    threads = max(1, int(cpu))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    return threads


class TrialFailed(RuntimeError):
    """A trial that cannot go on (out of memory): the message is the one line results.csv shows."""


def inject_fault(seed: int) -> None:
    """Reliability tests only: SWEEPER_INJECT_FAULT="oom:seed=S" makes every trial of seed S run out of
    memory as it starts, as a GPU would (torch.OutOfMemoryError). Unset: does nothing."""
    spec = os.environ.get("SWEEPER_INJECT_FAULT", "")
    kind, _, target = spec.partition(":")
    if kind == "oom" and target == f"seed={seed}":
        import torch  # in the trial, not at the worker's start (module docstring)

        raise torch.OutOfMemoryError("CUDA out of memory (simulated by SWEEPER_INJECT_FAULT)")


class ResumePoint(NamedTuple):
    step: int
    path: str
    tune_step: int | None
    """The step of Tune's checkpoint (the last one reported) when it could be read, else None."""


def resume_point(tune_checkpoint_dir: str | None, out_dir: str) -> ResumePoint | None:
    """The newest readable checkpoint among Tune's (the last one reported) and the trainer's own run
    directory (newer when the trial saved on its way out); unreadable ones are reported and skipped.
    None when there is none."""
    from trm_core.checkpoint import latest_valid_checkpoint, load_checkpoint  # torch: in the trial

    found: list[tuple[int, str]] = []
    tune_step = None
    if tune_checkpoint_dir is not None:
        try:
            tune_step = int(load_checkpoint(tune_checkpoint_dir)["step"])
            found.append((tune_step, tune_checkpoint_dir))
        except UserError as exc:
            log.warning("skipping Tune's checkpoint: %s", exc)
    own = latest_valid_checkpoint(out_dir, warn=lambda m: log.warning("%s", m))
    if own is not None:
        found.append((int(load_checkpoint(own)["step"]), str(own)))
    return ResumePoint(*max(found), tune_step) if found else None


def last_reported_step(times_file: str | None, trial_id: str) -> int | None:
    """The last step the driver took from this trial (trial_times.json's `last_step`, which
    sweeper.run.results writes at every result), or None when it has none or cannot be read."""
    try:
        step = json.loads(Path(times_file).read_text()).get(trial_id, {}).get("last_step") if times_file else None
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def unreported_evaluation(start: ResumePoint, out_dir: str, reported_step: int | None = None) -> dict[str, Any] | None:
    """The evaluation the trainer logged with the checkpoint it resumes from, when that checkpoint is
    its own and newer than both Tune's and the last step the driver took (`reported_step`): the trial
    stopped (driver interrupted, worker killed) after saving it and before Tune took the report. Tune
    never saw that step, so the trial reports it first, with the checkpoint; else Tune's results
    (result.json, the report, ASHA) would skip it. None when Tune has that step (a result can reach
    the driver while the retry gets no checkpoint of it), when no evaluation was logged there (a
    checkpoint saved on SIGTERM), or when it was the final one (the trainer evaluates and reports it
    again when it resumes there)."""
    known = [s for s in (start.tune_step, reported_step) if s is not None]
    if known and start.step <= max(known):
        return None
    found = None
    try:
        lines = Path(out_dir, "metrics.jsonl").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:  # a line cut short by the kill
            continue
        if isinstance(row, dict) and row.get("step") == start.step and "eval/exact_acc" in row:
            found = row
    return None if found is None or "final/exact_acc" in found else found


def trainer_dir(trials_dir: str, trial_id: str) -> str:
    """Where the trainer of trial `trial_id` writes (config.yaml, metrics.jsonl, its checkpoints,
    final.json): `trainer/` in the trial's folder in the sweep's storage, written there directly.

    Not in `tune.get_context().get_trial_dir()`. For the first trial of a worker that is Tune's
    staging folder on the driver, which the driver copies to storage file by file at every save of
    the experiment; a checkpoint's temporary file renamed, or an old checkpoint pruned, between its
    listing and its copy made that save fail with a traceback (CI of stop 34). For a worker's later
    trials (actors are reused) it is a working folder Tune never copies, so their trainer output stayed
    in /tmp/ray. Storage is a path every node sees (clusters/README.md), as Tune's checkpoints need.
    """
    return os.path.join(trials_dir, trial_folder(trial_id), "trainer")


def run_trial(config: dict[str, Any], base: SweepBase, trials_dir: str, times_file: str | None = None) -> None:
    """The function Ray runs per trial (wrapped with tune.with_parameters and with_resources):
    `config` is the searcher's sample, `base` what every trial of the sweep shares, `trials_dir` the
    phase's Tune directory in the sweep's storage (where the trial's folder is), `times_file` the
    phase's trial_times.json (the last step the driver took from each trial)."""
    import torch  # torch and the trainer load here, in the trial, not at the worker's start (module docstring)

    from trm_core.train import train  # as torch

    os.environ.setdefault("TQDM_DISABLE", "1")  # the trainer's bar would interleave across trials
    cfg = base.trainer_config(config)
    cfg.device = pick_device(base.gpu)
    set_threads(base.cpu)

    trial_id = tune.get_context().get_trial_id()
    out_dir = trainer_dir(trials_dir, trial_id)
    last_step = [0]

    # an eval_tts objective exists only after training: earlier results carry NaN (Tune wants the key)
    pending = {m: float("nan") for m in base.objectives if m.startswith("eval_tts/")}
    resumed: dict[str, int] = {}

    def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        last_step[0] = int(metrics.get("step", last_step[0]))
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tts = {}
        if base.final_eval is not None and checkpoint_dir and "final/exact_acc" in metrics:
            tts = final_eval_metrics(checkpoint_dir, base.final_eval)
        tune.report({**pending, **resumed, **metrics, **tts}, checkpoint=checkpoint)

    try:
        inject_fault(cfg.seed)
        checkpoint = tune.get_checkpoint()
        with preempt.training(), (checkpoint.as_directory() if checkpoint else nullcontext()) as ckpt_dir:
            start = resume_point(ckpt_dir, out_dir)
            if start is not None:
                log.warning("trial resumes from checkpoint %s", start.path)
                resumed[RESUMED_KEY] = start.step  # in every result of this worker: where it went on from
                missed = unreported_evaluation(start, out_dir, last_reported_step(times_file, trial_id))
                if missed is not None:
                    report(missed, start.path)
            # cost/gpu_s = the trainer's wall clock x the GPU share this trial holds (0 for CPU trials)
            train(cfg, report=report, out_dir=out_dir, resume_from=start and start.path, gpu_share=base.gpu if cfg.device != "cpu" else 0.0)
    except Stopped as stop:  # SIGTERM (a preempted node): the trainer saved the step it reached
        took = preempt.seconds_since_signal()
        if stop.checkpoint and stop.step != last_step[0]:  # at an evaluation's step Tune has it already
            # Reported, Tune keeps it in the sweep's storage and a retry on any node starts from it.
            tune.report({**pending, **resumed, "step": stop.step, PREEMPTED_KEY: stop.signame},
                        checkpoint=tune.Checkpoint.from_directory(stop.checkpoint))
        where = "checkpoint saved" if stop.checkpoint else "no checkpoint"
        raise preempt.TrialPreempted(f"stopped by {stop.signame} at step {stop.step} ({where} "
                                     f"{took or 0:.1f} s after the signal); Tune retries it from there") from None
    except TrainingDiverged as exc:
        # The last result: no metric (ASHA skips it, Optuna is told the configuration failed), the reason.
        tune.report({"step": exc.step, DIVERGED_KEY: exc.reason})
    except torch.OutOfMemoryError as exc:
        first = (str(exc).strip().splitlines() or ["out of memory"])[0][:200]
        raise TrialFailed(f"out of memory at step {last_step[0]} (seed {cfg.seed}): {first}") from None


def final_eval_metrics(checkpoint_dir: str, final_eval: dict[str, Any]) -> dict[str, Any]:
    """The engine on one checkpoint: `eval_tts/...` metrics and `eval_tts_figures` (JSON for Aim's plots)."""
    from trm_core.infer.engine import run, spec_from_mapping  # torch: in the trial (module docstring)

    spec, limit = spec_from_mapping(final_eval)
    result = run([checkpoint_dir], spec, limit=limit)
    return {**result.metrics, "eval_tts_figures": json.dumps(result.plot_data())}
