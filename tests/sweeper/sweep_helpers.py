"""Small spec builders shared by the sweeper's unit and integration tests."""

from __future__ import annotations

import copy
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from trm_core.config import to_dict

# A trainer config small enough that one trial takes seconds on one CPU core.
TINY_OVERRIDES = {
    "train.steps": 20,
    "train.eval_interval": 10,
    "train.log_interval": 10,
    "train.batch_size": 16,
    "model.hidden_size": 32,
    "data.n_train": 200,
    "data.n_test": 50,
    "optim.warmup_steps": 5,
}

GOOD: dict[str, Any] = {
    "name": "unit",
    "base": {"preset": "sudoku4_tiny", "overrides": dict(TINY_OVERRIDES)},
    "metric": "eval/exact_acc",
    "mode": "max",
    "space": {
        "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "recursion.n_inner": {"type": "int", "low": 1, "high": 3},
        "model.hidden_size": {"type": "categorical", "choices": [16, 32]},
    },
    "search": {"sampler": "tpe", "seed": 0, "num_samples": 4, "max_concurrent": 2},
    "scheduler": {"type": "asha", "grace_period": 10, "reduction_factor": 2},
    "seeds": [0, 1],
    "resources": {"cpu": 1, "gpu": 0},
    "failure": {"max_retries": 1},
    "storage": "runs/sweeps",
    "aim": {"repo": "runs/aim", "experiment": "unit"},
}


def good() -> dict[str, Any]:
    return copy.deepcopy(GOOD)


def write_spec(path: Path, data: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def small_spec_file(root: Path, name: str, num_samples: int, trial: dict[str, Any], **update) -> str:
    """GOOD as a one-seed sweep `name` of `num_samples` random configurations, one trial at a time, no
    scheduler or retries, storage and Aim under `root`, `trial` overrides on the base config, then
    `update` on the top-level keys; written to root/NAME.yaml."""
    raw = good()
    raw.update(name=name, seeds=[0], scheduler="none", storage=str(root / "sweeps"),
               aim={"repo": str(root / "aim"), "experiment": name}, failure={"max_retries": 0})
    raw["base"]["overrides"].update(trial)
    raw["search"] = {"sampler": "random", "seed": 0, "num_samples": num_samples, "max_concurrent": 1}
    raw.update(update)
    return write_spec(root / f"{name}.yaml", raw)


# Overrides for trials that a test interrupts or kills. A trial reports to Tune at its evaluations,
# so after its first report (step 50) it trains 150 more steps, seconds even on a fast machine:
# the signal lands while it trains.
LONG_TRIAL = {"train.steps": 200, "train.eval_interval": 50, "train.log_interval": 50}


def _times(times_file: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(Path(times_file).read_text())
    except (OSError, ValueError):
        return {}


def trials_ended(times_file: Path) -> int:
    """How many trials of a sweep (its trial_times.json) have ended."""
    return sum("ended_at" in t for t in _times(times_file).values())


def trial_training(times_file: Path) -> bool:
    """A trial of the sweep is training: it has reported a result and has not ended (nor been
    interrupted by an earlier run of the sweep, which leaves its entry so until it restarts)."""
    return any("first_result_at" in t and "ended_at" not in t and not t.get("interrupted")
               for t in _times(times_file).values())


def interrupt_when_a_trial_ends(times_file: Path, deadline_s: float = 900) -> threading.Thread:
    """Ctrl-C for the test process (SIGINT to itself) once `times_file` (a sweep's trial_times.json)
    shows a trial that ended and another that is training; gives up silently after `deadline_s` (a
    loaded 2-core machine). Use one trial at a time and LONG_TRIAL, so the sweep is still running."""

    def watch():
        deadline = time.time() + deadline_s
        while time.time() < deadline:
            if trials_ended(times_file) >= 1 and trial_training(times_file):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def signal_worker_after(times_file: Path, step: int, sig: int, deadline_s: float = 900):
    """Send `sig` to the worker of the first trial whose trial_times.json entry (`times_file`) shows a
    result at `step` or later; gives up after `deadline_s` (a loaded 2-core machine). Returns the
    watching thread and a dict that gets the trial id, its last step and the worker's pid."""
    signalled: dict[str, Any] = {}

    def watch():
        deadline = time.time() + deadline_s
        while time.time() < deadline:
            for tid, t in _times(times_file).items():
                if (t.get("last_step") or 0) >= step and t.get("pid"):
                    os.kill(t["pid"], sig)
                    signalled.update(trial=tid, step=t["last_step"], pid=t["pid"])
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, signalled


def check_dry_run(out: str, spec) -> None:
    """`run SPEC --dry-run` printed the plan of `spec` (a loaded SweepSpec): its file, base config (the
    YAML block parses back to it), metric, every space entry in order, trial count, resources and
    concurrency on this machine, directory and Aim repo; a spec that cannot start here says why, and
    one whose trials need a GPU this machine lacks names its CPU counterpart."""
    from sweeper.run.preflight import start_problems
    from sweeper.spec.resources import concurrency, local_nodes

    lines = out.splitlines()
    assert lines[0] == f"sweep {spec.name} from {spec.file}", lines[0]
    start = lines.index(next(line for line in lines if line.startswith("base config (")))
    end = lines.index(next(line for line in lines if line.startswith("metric: ")))
    assert yaml.safe_load("\n".join(line[2:] for line in lines[start + 1:end])) == to_dict(spec.base_cfg)
    assert lines[end] == f"metric: {spec.objectives_text}"  # `eval/exact_acc (max)`; several: `..., cost/train_s (min)`
    n_const = len(spec.params) - len(spec.searched)
    assert lines[end + 1] == f"space ({len(spec.searched)} searched, {n_const} constant):"
    assert [line.split()[0] for line in lines[end + 2:end + 2 + len(spec.params)]] == list(spec.params)
    assert (f"{spec.num_samples} configurations x {len(spec.seeds)} seeds {spec.seeds} = {spec.total_trials} trials"
            in out)
    assert f"resources per trial: {spec.cpu:g} CPU, {spec.gpu:g} GPU; retries {spec.max_retries};" in out
    fits = concurrency(spec, local_nodes())
    assert (f"): {fits} trials at a time" if fits else "): none - a trial needs") in out
    assert f"aim: repo {spec.aim_repo}, experiment {spec.aim_experiment}" in out
    refusals = [line for line in lines if line.startswith("cannot start here: ")]
    assert len(refusals) == len(start_problems(spec, local=True)), refusals
    if not fits and spec.gpu > 0:  # trials need a GPU this machine lacks: name the CPU counterpart, or say there is none
        wanted = f"run: python -m sweeper run {spec.cpu_variant}" if spec.cpu_variant else "names no CPU counterpart"
        assert any(wanted in line for line in refusals), refusals
