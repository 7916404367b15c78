"""The Aim adapter: the only module that imports aim.

One Aim run per Ray trial, written from the driver by a Tune callback, so workers on other nodes
need no access to the repo and no two processes write one run. A run holds the hparams (the
trial's sampled and constant keys, plus its seed), the sweep's name, the trial id, the seed, the
configuration id shared by the seeds of one sampled configuration, the full resolved trainer
config, and every metric the trainer reports: `train/loss` is tracked as `loss` in context
{subset: train}, `eval/exact_acc` as `exact_acc` in {subset: eval}, against the trainer's `step`.
A non-scalar metric (an evaluation table) is tracked as aim.Text holding its JSON. A trial's
test-time scaling plot data (`eval_tts_figures`, sweeper.trainable) becomes aim.Image figures in
context {subset: eval_tts}, drawn by trm_core.infer.plots. Runs of a replicate phase also carry
`sweep.phase` and the tag `replicate`; `attach_report` puts a sweep's report (table and plots) in
its experiment as one more run, tagged `report`.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import time
from pathlib import Path
from typing import Any

from ray import tune

from trm_core.errors import write_text_atomic


def ensure_repo(path: str | os.PathLike) -> Path:
    """Create the Aim repo before any writer exists (parallel first writers would race)."""
    import aim

    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    aim.Repo.from_path(str(path), init=not aim.Repo.exists(str(path)))
    return path


def reindex(path: str | os.PathLike) -> None:
    """Fold finished runs into the repo index, so SDK queries and the UI list them.

    Same as `aim storage --repo PATH reindex -y` (aim 3.29's command calls this method).
    """
    import contextlib
    import io

    import aim

    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        aim.Repo.from_path(str(path))._recreate_index()


def up_command(path: str | os.PathLike, port: int = 43800) -> str:
    return f"aim up --repo {shlex.quote(str(path))} --host 127.0.0.1 --port {port}"


def query_runs(path: str | os.PathLike, sweep: str) -> list[dict[str, Any]]:
    """The sweep's runs as plain dicts: hash, name, hparams, sweep attrs, metric names per context."""
    import aim

    repo = aim.Repo.from_path(str(path))
    out = []
    for run in repo.iter_runs():
        sweep_attrs = run.get("sweep") or {}
        if sweep_attrs.get("name") != sweep:
            continue
        metrics = sorted({(m.name, m.context.to_dict().get("subset", "")) for m in run.metrics()})
        out.append({"hash": run.hash, "name": run.name, "hparams": run.get("hparams") or {},
                    "sweep": sweep_attrs, "metrics": metrics, "experiment": run.experiment})
    return out


def _split_key(key: str) -> tuple[str, dict[str, str]]:
    """'eval/halt_first/exact_acc' -> ('halt_first/exact_acc', {'subset': 'eval'})."""
    head, _, rest = key.partition("/")
    return (rest, {"subset": head}) if rest else (key, {})


def track_figures(run: Any, data: dict[str, Any], step: int) -> None:
    """The test-time scaling plots (accuracy vs depth / breadth / NFE, halting, residuals) as aim.Image."""
    import aim
    import matplotlib.pyplot as plt

    from trm_core.infer.plots import figures

    for name, fig in figures(data).items():
        run.track(aim.Image(fig), name=name, step=step, context={"subset": "eval_tts"})
        plt.close(fig)


class AimCallback(tune.Callback):
    """Tune callback writing one Aim run per trial. Picklable until `setup` (Tuner pickles it)."""

    phase: str | None = None  # class default: callbacks pickled before `phase` existed still restore

    def __init__(self, repo: str, experiment: str, sweep: str, trial_info, state_file: str, phase: str | None = None):
        self.repo, self.experiment, self.sweep, self.phase = repo, experiment, sweep, phase
        self.trial_info, self.state_file = trial_info, state_file
        self._runs: dict[str, Any] = {}
        self._hashes: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runs"] = {}
        return state

    def setup(self, **info) -> None:
        ensure_repo(self.repo)
        if os.path.exists(self.state_file):  # a resumed sweep continues its trials' runs
            self._hashes = json.loads(Path(self.state_file).read_text())

    def _save_hashes(self) -> None:
        write_text_atomic(self.state_file, json.dumps(self._hashes, indent=1))

    def _open(self, trial) -> Any:
        import aim

        run = self._runs.get(trial.trial_id)
        if run is not None:
            return run
        old = self._hashes.get(trial.trial_id)
        kwargs = dict(repo=self.repo, system_tracking_interval=None, capture_terminal_logs=False)
        run = aim.Run(run_hash=old, **kwargs) if old else aim.Run(experiment=self.experiment, **kwargs)
        if not old:
            info = self.trial_info(trial.config)
            run.name = f"{self.sweep}/{trial.trial_id}/seed{info['seed']}"
            run["hparams"] = {**info["params"], "seed": info["seed"]}
            run["sweep"] = {"name": self.sweep, "trial_id": trial.trial_id, "seed": info["seed"],
                            "config_id": info["config_id"], **({"phase": self.phase} if self.phase else {})}
            if self.phase:  # a replicate phase (sweeper/replicate.py)
                run.add_tag("replicate")
            run["config"] = info["config"]
            self._hashes[trial.trial_id] = run.hash
            self._save_hashes()
        run["status"] = "running"
        self._runs[trial.trial_id] = run
        return run

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._open(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        import aim

        run = self._open(trial)
        step = int(result.get("step", result.get("training_iteration", 0)))
        for key in self.trial_info.metric_keys(result):
            value = result[key]
            name, context = _split_key(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if math.isfinite(value):
                    run.track(float(value), name=name, step=step, context=context)
            else:
                run.track(aim.Text(json.dumps(value, default=str)), name=name, step=step, context=context)
        if isinstance(result.get("eval_tts_figures"), str):
            track_figures(run, json.loads(result["eval_tts_figures"]), step)

    def _close(self, trial, status: str) -> None:
        run = self._open(trial)  # a trial can fail before its first result: it still gets its run
        del self._runs[trial.trial_id]
        run["status"] = status
        run["finished_at"] = time.time()
        run.close()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        step = (trial.last_result or {}).get("step")
        target = self.trial_info(trial.config)["cfg"].train.steps
        self._close(trial, "stopped_early" if step is not None and step < target else "done")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._close(trial, "error")

    def on_experiment_end(self, trials, **info) -> None:
        for run in self._runs.values():
            run.close()
        self._runs.clear()


def attach_report(repo: str | os.PathLike, experiment: str, name: str, markdown: str,
                  images: dict[str, str | os.PathLike], summary: dict[str, Any], state_file: str | os.PathLike) -> str:
    """Attach a report to a sweep's Aim experiment: one run named `{name}` (tag `report`) holding
    `report` (the headline numbers, as params: queryable), the markdown tables as aim.Text `report`
    and each plot as aim.Image `plot/{key}`. Making the report again adds a step to the same run
    (its hash is kept in `state_file`). Returns the run's hash."""
    import aim

    ensure_repo(repo)
    state = Path(state_file)
    old = json.loads(state.read_text()).get("hash") if state.exists() else None
    kwargs = dict(repo=str(repo), system_tracking_interval=None, capture_terminal_logs=False)
    run = aim.Run(run_hash=old, **kwargs) if old else aim.Run(experiment=experiment, **kwargs)
    step = int(run.get("report_count") or 0)
    run.name = name
    if "report" not in run.tags:
        run.add_tag("report")
    run["report_count"] = step + 1
    run["report"] = summary
    run.track(aim.Text(markdown), name="report", step=step)
    for key, path in images.items():
        run.track(aim.Image(str(path), caption=key), name=f"plot/{key}", step=step)
    run.close()
    write_text_atomic(state, json.dumps({"hash": run.hash}))
    reindex(repo)
    return run.hash
