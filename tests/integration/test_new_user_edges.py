"""What a new user hit on a fresh clone (issue 26), through the real command line: sweeps run as
subprocesses (`python -m sweeper ...`, output to pipes, as in a log file) that join one real local
Ray (loopback) with --address, with the real Optuna and a real Aim repo on disk.

One sweep, run with --name and a fast progress line, is shared by the tests of the name, the Aim
runs, the progress line, `resume` of a finished sweep, `replicate --set` and `report A B`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sweep_helpers import small_spec_file, write_spec

from sweeper.aim.repo import query_runs
from sweeper.run.table import read_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
# 100 steps, evaluated at 50 and 100: a trial lasts a few seconds, so the progress line repeats in between
TRIAL = {"train.steps": 100, "train.eval_interval": 50, "train.log_interval": 50}


def sweeper(*args, cwd, timeout=600) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-m", "sweeper", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def spec_file(root: Path, name: str, num_samples: int, **update) -> str:
    return small_spec_file(root, name, num_samples, TRIAL, **update)


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def named(ray_address, tmp_path_factory):
    root = tmp_path_factory.mktemp("named")
    spec = spec_file(root, "unit", 3)
    proc = sweeper("run", spec, "--name", "mine", "--address", ray_address, "--progress-every", "0.2", cwd=root)
    return {"root": root, "spec": spec, "proc": proc, "dir": root / "sweeps" / "mine", "address": ray_address,
            "storage": ["--storage", str(root / "sweeps")]}


def test_named_sweep_finishes(named):
    assert named["proc"].returncode == 0, named["proc"].stdout + named["proc"].stderr
    assert json.loads((named["dir"] / "sweep.json").read_text())["status"] == "finished"
    assert not (named["root"] / "sweeps" / "unit").exists()


def test_name_is_the_aim_experiment_and_runs_group_by_configuration(named):
    """Items 3 and 8: --name names the experiment (the spec's experiment was its own name); a run is
    named SWEEP/CONFIG_ID/seedN and tagged with its sweep, phase and configuration."""
    runs = query_runs(named["root"] / "aim", "mine")
    table = read_table(named["dir"] / "results.csv")
    assert len(runs) == 3 and {r["experiment"] for r in runs} == {"mine"}
    for r in runs:
        cfg = r["sweep"]["config_id"]
        assert r["name"] == f"mine/{cfg}/seed0" and r["sweep"]["phase"] == "search"
        assert {"sweep:mine", "phase:search", f"config:{cfg}"} <= set(r["tags"]), r["tags"]
    assert sorted(r["hash"] for r in runs) == sorted(table["aim_run"])


def test_a_taken_name_is_refused_and_nothing_changes(named, one_line_error):
    """Item 3: an explicit --name that a sweep has is refused, naming `resume` and the directory;
    --dry-run refuses it too."""
    before = snapshot(named["dir"])
    line = one_line_error(sweeper("run", named["spec"], "--name", "mine", "--address", named["address"], cwd=named["root"]))
    assert "--name mine: a sweep of that name exists (finished" in line and str(named["dir"]) in line, line
    assert f"python -m sweeper resume mine --storage {named['root'] / 'sweeps'}" in line, line
    line = one_line_error(sweeper("run", named["spec"], "--name", "mine", "--dry-run", cwd=named["root"]))
    assert "a sweep of that name exists" in line
    assert snapshot(named["dir"]) == before


def test_progress_line_keeps_the_best_so_far_shows_an_eta_and_repeats_in_a_log(named):
    """Item 6: `best so far` never gets worse (mode max), an ETA follows the first ended trial, and
    in a log (stderr is a pipe here) the line is written at least every --progress-every seconds."""
    lines = [line for line in named["proc"].stderr.splitlines() if line.startswith("[mine]")]
    bests = [float(m.group(1)) for line in lines if (m := re.search(r"best so far eval/exact_acc=([0-9.]+)", line))]
    assert bests and bests == sorted(bests), lines
    assert all(re.search(r"\(cfg-[0-9a-f]{8}, seed 0, step \d+\)", line) for line in lines if "best so far" in line)
    after_first = [line for line in lines if re.search(r"[12]/3 done", line)]
    assert after_first and all("ETA ~" in line for line in after_first), lines
    assert not any("ETA" in line for line in lines if "0/3 done" in line or "3/3 done" in line), lines
    news = [line.split("  ", 1)[1].split("  ETA")[0] for line in lines]
    assert any(a == b for a, b in zip(news, news[1:])), lines  # a repeat: only the interval writes one


def test_resume_of_a_finished_sweep_runs_nothing(named):
    """Item 4: `resume` of a finished sweep says so, starts no Ray and rewrites nothing."""
    before = snapshot(named["dir"])
    proc = sweeper("resume", "mine", *named["storage"], cwd=named["root"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sweep mine already finished with 3 trials (3 done)" in proc.stdout and "nothing to resume" in proc.stdout
    assert snapshot(named["dir"]) == before


def test_replicate_with_a_trainer_set_runs_new_configurations(named):
    """Item 9: `replicate --set train.steps=50` shrinks the phase; the replicated configuration gets
    its own id (its trials compute something else), nothing of the search is reused."""
    search = read_table(named["dir"] / "results.csv")
    proc = sweeper("replicate", "mine", "--top", "1", "--seeds", "0", "--set", "train.steps=50",
                   *named["storage"], "--address", named["address"], cwd=named["root"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "with train.steps=50: new configurations" in proc.stdout and "0 already trained to the end (reused), 1 to run" in proc.stdout
    rep = read_table(named["dir"] / "replicate_1" / "results.csv")
    assert len(rep) == 1 and rep["step"].iloc[0] == 50 and rep["status"].iloc[0] == "done"
    assert rep["param:train.steps"].iloc[0] == 50 and rep["config_id"].iloc[0] not in set(search["config_id"])
    phase = json.loads((named["dir"] / "replicate_1" / "phase.json").read_text())
    assert phase["sets"] == ["train.steps=50"] and phase["status"] == "finished"
    run = [r for r in query_runs(named["root"] / "aim", "mine") if r["sweep"]["phase"] == "replicate_1"]
    assert len(run) == 1 and run[0]["name"] == f"mine/replicate_1/{rep['config_id'].iloc[0]}/seed0"
    assert {"phase:replicate_1", "replicate"} <= set(run[0]["tags"])


def test_report_of_sweeps_on_different_tasks_warns(named):
    """Item 7: `report A B` of a 4x4 and a 6x6 sweep says that they measure different tasks."""
    spec = spec_file(named["root"], "six", 1)
    raw = yaml.safe_load(Path(spec).read_text())
    raw["base"]["overrides"]["data.board_size"] = 6
    write_spec(Path(spec), raw)
    assert sweeper("run", spec, "--address", named["address"], cwd=named["root"]).returncode == 0
    proc = sweeper("report", "mine", "six", *named["storage"], "--no-aim", cwd=named["root"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warning = "A trained on sudoku 4x4 puzzles and B on sudoku 6x6: their eval/exact_acc measure different tasks"
    assert f"warning: {warning}" in proc.stderr and f"Warning: {warning}" in proc.stdout


def test_a_sweep_whose_trials_never_report_its_metric_fails(ray_address, tmp_path):
    """Item 2: trials that end without the metric (train/fp_residual: only the fixed-point solver
    reports it) make the sweep `failed`, exit 1, with the reason."""
    spec = spec_file(tmp_path, "nometric", 1, metric="train/fp_residual", mode="min")
    proc = sweeper("run", spec, "--address", ray_address, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    record = json.loads((tmp_path / "sweeps" / "nometric" / "sweep.json").read_text())
    assert record["status"] == "failed" and "no trial reported train/fp_residual (1 done; they report" in record["reason"]
    assert "reason: no trial reported train/fp_residual" in proc.stdout


def test_a_cluster_without_the_gpus_leaves_no_sweep_behind(ray_address, tmp_path, one_line_error):
    """Item 1: joining a cluster that can never hold a trial is one line, exit 2, and the claimed
    sweep directory is removed: the name stays free."""
    spec = spec_file(tmp_path, "gpu", 1, resources={"cpu": 1, "gpu": 1})
    line = one_line_error(sweeper("run", spec, "--address", ray_address, cwd=tmp_path))
    assert "resources.gpu: the cluster can never run a trial: a trial needs 1 GPU but the largest node has 0" in line
    assert "no CPU counterpart (cpu_variant:)" in line
    assert not (tmp_path / "sweeps" / "gpu").exists()
    assert pd.Index([p.name for p in (tmp_path / "sweeps").iterdir() if p.is_dir()]).empty
