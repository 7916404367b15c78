"""A real 4-trial sweep (Ray + Optuna + Aim + the real trainer), then everything a user looks at.

One Ray per module (2 CPUs). The sweep: 2 configurations x 2 seeds, a conditional space
(weight decay only under adamw), ASHA on training steps, run through the real CLI entry point.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from datetime import datetime
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from sweep_helpers import LONG_TRIAL, good, interrupt_when_a_trial_ends, signal_worker_after, write_spec

from sweeper.aim.repo import query_runs
from sweeper.run.table import read_table
from sweeper.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sweep(ray_cluster, tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    raw = good()
    raw.update(name="e2e", seeds=[0, 1], storage=str(d / "sweeps"), aim={"repo": str(d / "aim"), "experiment": "e2e"})
    raw["space"] = {
        "optim.name": {"type": "categorical", "choices": ["adamw", "adam_atan2"]},
        "optim.weight_decay": {"type": "float", "low": 0.01, "high": 0.5, "log": True, "when": {"optim.name": "adamw"}},
        "optim.lr": {"type": "float", "low": 1e-3, "high": 3e-3, "log": True},
    }
    raw["search"] = {"sampler": "tpe", "seed": 0, "num_samples": 2, "max_concurrent": 2,
                     "points_to_evaluate": [{"optim.name": "adamw"}, {"optim.name": "adam_atan2"}]}
    spec = write_spec(d / "e2e.yaml", raw)
    t0 = time.time()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["run", spec])
    return {"dir": d, "sweep_dir": d / "sweeps" / "e2e", "aim": d / "aim", "rc": rc, "wall_s": time.time() - t0, "spec": spec,
            "stdout": out.getvalue(), "stderr": err.getvalue()}


def test_sweep_finishes(sweep):
    assert sweep["rc"] == 0
    record = json.loads((sweep["sweep_dir"] / "sweep.json").read_text())
    assert record["status"] == "finished" and record["errors"] == 0 and record["total_trials"] == 4
    assert record["best"]["seeds"] >= 1 and "optim.name" in record["best"]["config"]


def test_four_aim_runs_with_hparams_and_metrics(sweep):
    runs = query_runs(sweep["aim"], "e2e")
    assert len(runs) == 4
    for run in runs:
        assert {"optim.name", "optim.lr", "seed"} <= set(run["hparams"])
        assert run["sweep"]["seed"] == run["hparams"]["seed"] and run["sweep"]["trial_id"]
        assert run["experiment"] == "e2e"
        assert {("exact_acc", "eval"), ("cell_acc", "eval"), ("loss", "train")} <= set(run["metrics"])
    by_config: dict[str, set] = {}
    for run in runs:
        by_config.setdefault(run["sweep"]["config_id"], set()).add(run["hparams"]["seed"])
    assert sorted(map(sorted, by_config.values())) == [[0, 1], [0, 1]]  # every configuration, every seed


def test_results_table_is_complete(sweep):
    csv = read_table(sweep["sweep_dir"] / "results.csv")
    parquet = pd.read_parquet(sweep["sweep_dir"] / "results.parquet")
    assert len(csv) == len(parquet) == 4
    assert set(csv["status"]) <= {"done", "stopped_early"}
    assert csv["eval/exact_acc"].notna().all() and (csv["step"] >= 10).all()
    assert set(csv["seed"]) == {0, 1} and csv["config_id"].nunique() == 2
    assert set(csv["aim_run"]) == {r["hash"] for r in query_runs(sweep["aim"], "e2e")}
    assert csv["started_at"].notna().all() and csv["ended_at"].notna().all()


def test_every_trial_keeps_its_trainer_output_in_the_sweep(sweep):
    """Each trial's trainer writes config.yaml, metrics.jsonl and its checkpoints into its folder in the
    sweep's storage, also the trials of a reused worker (4 trials on 2 workers): not in Tune's staging
    folder, which the driver copied file by file as the trainer renamed and pruned there."""
    csv = read_table(sweep["sweep_dir"] / "results.csv")
    for _, row in csv.iterrows():
        own = sweep["sweep_dir"] / "tune" / f"trial_{row['trial_id']}" / "trainer"
        assert (own / "config.yaml").is_file() and list((own / "checkpoints").glob("step_*")), own
        steps = [json.loads(line)["step"] for line in (own / "metrics.jsonl").read_text().splitlines()]
        assert steps and max(steps) == row["step"], (own, steps[-3:], row["step"])
        assert not list(own.rglob(".*tmp*")), list(own.rglob(".*tmp*"))  # no temporary file left behind
    import ray  # Tune's staging folders on the driver: SESSION/artifacts/<time>/tune/driver_artifacts/trial_*

    session = Path(ray._private.worker._global_node.get_session_dir_path())
    staged = list(session.glob("artifacts/*/tune/driver_artifacts/trial_*"))
    assert {p.name for p in staged} >= {f"trial_{t}" for t in csv["trial_id"]}, (session, staged)
    assert not [p for p in staged if (p / "trainer").exists()]


def test_summary_table_and_column_order(sweep):
    """Issue 16 item 8: the top configurations as a table, the best named by the progress line's id,
    floats to their meaningful digits; results.csv in the documented column order with ISO times."""
    out = sweep["stdout"]
    assert "top configurations by eval/exact_acc (max), mean +/- std over seeds:" in out, out
    best_id = re.search(r"^best: (cfg-[0-9a-f]{8}) ", out, re.M).group(1)
    assert re.search(rf"^\s+\*\s+{best_id}\s", out, re.M), out  # starred in the table
    assert re.search(r"best so far eval/exact_acc=\S+ \((cfg-[0-9a-f]{8}), seed \d, step \d+\)", sweep["stderr"]), sweep["stderr"][-500:]
    assert not re.search(r"\d\.\d{7,}", out), out  # no 0.0030000379968058775
    csv = read_table(sweep["sweep_dir"] / "results.csv")
    cols = list(csv.columns)
    assert cols[:12] == ["trial_id", "config_id", "seed", "aim_run", "status", "step", "steps_target", "retries",
                         "started_at", "ended_at", "wall_s", "error"], cols
    params = [c for c in cols if c.startswith("param:")]
    assert cols[12:12 + len(params)] == params and cols[12 + len(params)] == "eval/exact_acc"
    for t in list(csv["started_at"]) + list(csv["ended_at"]):
        assert datetime.fromisoformat(t).tzinfo is not None, t


def test_conditional_parameter_only_under_its_condition(sweep):
    csv = read_table(sweep["sweep_dir"] / "results.csv")
    assert set(csv["param:optim.name"]) == {"adamw", "adam_atan2"}
    for _, row in csv.iterrows():
        assert pd.notna(row["param:optim.weight_decay"]) == (row["param:optim.name"] == "adamw")
    for run in query_runs(sweep["aim"], "e2e"):
        assert ("optim.weight_decay" in run["hparams"]) == (run["hparams"]["optim.name"] == "adamw")


def test_ls_and_resume(sweep, capsys):
    assert main(["ls", "--storage", str(sweep["dir"] / "sweeps")]) == 0
    out = capsys.readouterr().out
    assert "e2e" in out and "finished" in out and "4/4" in out
    # Resuming a finished sweep says so and runs nothing: no Ray start, sweep.json not rewritten (issue 26 item 4).
    record = (sweep["sweep_dir"] / "sweep.json").read_bytes()
    assert main(["resume", "e2e", "--storage", str(sweep["dir"] / "sweeps")]) == 0
    assert "sweep e2e already finished with 4 trials" in capsys.readouterr().out
    assert (sweep["sweep_dir"] / "sweep.json").read_bytes() == record
    assert len(read_table(sweep["sweep_dir"] / "results.csv")) == 4
    assert len(query_runs(sweep["aim"], "e2e")) == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_aim_up_serves_the_sweeps_runs(sweep):
    port = _free_port()
    aim_bin = str(Path(sys.executable).with_name("aim"))
    proc = subprocess.Popen([aim_bin, "up", "--repo", str(sweep["aim"]), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "AIM_UI_TELEMETRY_ENABLED": "0"})
    base = f"http://127.0.0.1:{port}/api"
    try:
        experiments = _wait_json(f"{base}/experiments/", proc)
        exp = next(e for e in experiments if e["name"] == "e2e")
        assert exp["run_count"] == 4
        runs = requests.get(f"{base}/experiments/{exp['id']}/runs/", timeout=10).json()["runs"]
        assert len(runs) == 4 and all(r["name"].startswith("e2e/") for r in runs)
        info = requests.get(f"{base}/runs/{runs[0]['run_id']}/info/", timeout=10).json()
        assert "optim.lr" in info["params"]["hparams"] and info["params"]["sweep"]["name"] == "e2e"
        names = {m["name"] for m in info["traces"]["metric"]}
        assert {"exact_acc", "loss"} <= names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _wait_json(url: str, proc: subprocess.Popen, timeout_s: float = 60):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        assert proc.poll() is None, "aim up exited early"
        try:
            r = requests.get(url, timeout=3)
            if r.status_code == 200:
                return r.json()
        except requests.RequestException:  # not listening yet, or slow to answer its first request
            pass
        time.sleep(0.5)
    raise AssertionError(f"aim up did not answer {url} within {timeout_s}s")


STEPS = 200


def test_killed_trial_retries_from_its_checkpoint(ray_cluster, tmp_path):
    """SIGKILL the trial's worker after its first checkpoint: Tune retries it (failure.max_retries)
    and the trainer resumes from the checkpoint (train(resume_from=...)), so `step` never repeats."""
    raw = good()
    raw.update(name="retry", seeds=[0], scheduler="none", failure={"max_retries": 1},
               storage=str(tmp_path / "sweeps"), aim={"repo": str(tmp_path / "aim")})
    raw["search"] = {"sampler": "random", "seed": 0, "num_samples": 1}
    # 190 steps after the first checkpoint (step 10): still training when the kill lands, also on a fast machine
    raw["base"]["overrides"].update({"train.steps": STEPS, "train.eval_interval": 10})
    spec = write_spec(tmp_path / "retry.yaml", raw)
    killer, killed = signal_worker_after(tmp_path / "sweeps" / "retry" / "trial_times.json", 10, signal.SIGKILL)
    assert main(["run", spec]) == 0
    killer.join(timeout=5)
    assert killed, "the trial finished before it could be killed"
    row = read_table(tmp_path / "sweeps" / "retry" / "results.csv").iloc[0]
    assert row["status"] == "done" and row["retries"] == 1 and row["step"] == STEPS
    result_lines = (tmp_path / "sweeps" / "retry" / "tune" / f"trial_{killed['trial']}" / "result.json").read_text().splitlines()
    rows = [json.loads(line) for line in result_lines]
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS, steps  # resumed: no step reported twice
    # A new worker went on from the checkpoint: its first report is past step 10, not a restart from 0.
    # (Whether the killed worker's own step-10 row reached result.json before the kill is a race.)
    new_worker = [r for r in rows if r["pid"] != killed["pid"]]
    assert new_worker and new_worker[0]["iterations_since_restore"] == 1 and new_worker[0]["step"] > 10, rows
    assert len(query_runs(tmp_path / "aim", "retry")) == 1


def test_sigterm_to_a_worker_saves_the_step_it_reached(ray_cluster, tmp_path):
    """SIGTERM to the trial's worker between two evaluations (as a preempted node delivers it): the
    trainer finishes the step in progress, checkpoints there and Tune retries the trial from that step
    (sweeper.run.preempt): every step is trained once (the trainer logs each one), results.csv counts
    the retry, and the Aim run is continued, not duplicated."""
    steps, every = 300, 50
    raw = good()
    raw.update(name="preempt", seeds=[0], scheduler="none", failure={"max_retries": 1},
               storage=str(tmp_path / "sweeps"), aim={"repo": str(tmp_path / "aim")})
    raw["search"] = {"sampler": "random", "seed": 0, "num_samples": 1}
    raw["base"]["overrides"].update({"train.steps": steps, "train.eval_interval": every, "train.log_interval": 1})
    spec = write_spec(tmp_path / "preempt.yaml", raw)
    d = tmp_path / "sweeps" / "preempt"
    signaller, signalled = signal_worker_after(d / "trial_times.json", every, signal.SIGTERM)
    assert main(["run", spec]) == 0
    signaller.join(timeout=5)
    assert signalled and signalled["step"] == every, signalled
    row = read_table(d / "results.csv").iloc[0]
    assert row["status"] == "done" and row["retries"] == 1 and row["step"] == steps, row.to_dict()
    trial_dir = d / "tune" / f"trial_{signalled['trial']}"
    rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    stopped = [r for r in rows if r.get("trial/preempted")]
    if stopped:
        # The worker got the signal after its step-50 report and saved the step it was on when it finished.
        assert len(stopped) == 1 and stopped[0]["trial/preempted"] == "SIGTERM", rows
        at = stopped[0]["step"]
        assert every < at < 2 * every and stopped[0]["pid"] == signalled["pid"], stopped
    else:
        # The signal landed between the step-50 report and the next step (a race seen once in CI): the
        # loop stops at once, its checkpoint is the step-50 one Tune already has, so nothing more is reported.
        at = every
    steps_reported = [r["step"] for r in rows]
    assert steps_reported == sorted(set(steps_reported)) and steps_reported[-1] == steps, steps_reported
    new_worker = [r for r in rows if r["pid"] != signalled["pid"]]
    assert new_worker and new_worker[0]["iterations_since_restore"] == 1 and new_worker[0]["step"] == 2 * every
    assert {r["trial/resumed_at_step"] for r in new_worker} == {at}, new_worker  # from the saved step
    # The trainer logs every step (train.log_interval 1): none twice, none missing, across both workers.
    logged = [json.loads(line)["step"] for line in (trial_dir / "trainer" / "metrics.jsonl").read_text().splitlines()
              if '"train/loss"' in line and '"eval/exact_acc"' not in line]  # eval lines repeat the train stats
    assert logged == list(range(1, steps + 1)), [s for s in logged if logged.count(s) > 1][:10]
    assert all(r["time/stop_grace_s"] > 0 for r in rows if "eval/exact_acc" in r)
    assert len(query_runs(tmp_path / "aim", "preempt")) == 1


def test_interrupted_sweep_resumes_where_it_stopped(ray_cluster, tmp_path):
    """Ctrl-C (SIGINT to the driver) after the first trial ends; `resume` finishes the rest, keeps the
    finished trial as it was and continues the same Aim runs."""
    raw = good()
    raw.update(name="stop", seeds=[0], scheduler="none", storage=str(tmp_path / "sweeps"),
               aim={"repo": str(tmp_path / "aim"), "experiment": "stop"})
    raw["search"] = {"sampler": "tpe", "seed": 3, "num_samples": 3, "max_concurrent": 1}
    raw["base"]["overrides"].update(LONG_TRIAL)
    spec = write_spec(tmp_path / "stop.yaml", raw)
    d = tmp_path / "sweeps" / "stop"

    interrupt_when_a_trial_ends(d / "trial_times.json")
    assert main(["run", spec]) == 130
    assert json.loads((d / "sweep.json").read_text())["status"] == "interrupted"
    before = read_table(d / "results.csv")
    first = before[(before["status"] == "done") & before["ended_at"].notna()]
    assert 1 <= len(first) < 3
    assert main(["resume", str(d)]) == 0
    after = read_table(d / "results.csv")
    assert len(after) == 3 and set(after["status"]) == {"done"}
    kept = after.set_index("trial_id").loc[first["trial_id"]]
    assert list(kept["ended_at"]) == list(first["ended_at"])  # the finished trial was not run again
    assert json.loads((d / "sweep.json").read_text())["status"] == "finished"
    assert len(query_runs(tmp_path / "aim", "stop")) == 3
