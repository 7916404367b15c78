"""The edges a new user hits (issue 16) and the faults a sweep must survive (issue 13), through the
real command line: sweeps run as subprocesses (`python -m sweeper ...`) that join one real local Ray
(loopback) with --address, with the real Optuna and a real Aim repo on disk.

One cluster per module; its workers simulate an out-of-memory error in every trial of seed 1
(SWEEPER_INJECT_FAULT, see sweeper.run.trainable.inject_fault), so the sweeps here use seed 0 unless
they test that fault.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sweep_helpers import LONG_TRIAL, small_spec_file, trial_training, trials_ended, write_spec

from sweeper.aim.repo import query_runs
from sweeper.run.table import read_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
TINY_TRIAL = {"train.steps": 20, "train.eval_interval": 10, "train.log_interval": 10}


def _env():
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": path}


def sweeper(*args, cwd, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeper", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def start(*args, cwd, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweeper", *args], cwd=cwd, env=_env(),
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def spec_file(tmp_path: Path, name: str, num_samples: int, **update) -> str:
    return small_spec_file(tmp_path, name, num_samples, TINY_TRIAL, **update)


def signal_when(proc: subprocess.Popen, d: Path, n_ended: int, sig: int, timeout_s: float = 900) -> int:
    """Send `sig` to a running sweep once `n_ended` of its trials have ended and the next is training
    (use LONG_TRIAL: a trial that has only started may finish first on a fast machine, as in CI)."""
    deadline = time.time() + timeout_s
    times_file = d / "trial_times.json"
    while proc.poll() is None and time.time() < deadline:
        if trials_ended(times_file) >= n_ended and trial_training(times_file):
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    return proc.wait(timeout=300)


def test_three_sweeps_of_one_spec_started_together(ray_address_with_faults, tmp_path):
    """Issue 16 item 1, issue 13 fault 6 (two sweeps writing to one Aim repo at once): each sweep
    claims its own directory and keeps all its trials; the shared Aim repo has every run, intact."""
    spec = spec_file(tmp_path, "same", 2, resources={"cpu": 0.5, "gpu": 0})
    procs = [start("run", spec, "--address", ray_address_with_faults, cwd=tmp_path, log=tmp_path / f"log{i}")
             for i in range(3)]
    codes = [p.wait(timeout=900) for p in procs]
    logs = [(tmp_path / f"log{i}").read_text() for i in range(3)]
    assert codes == [0, 0, 0], logs
    dirs = sorted(d for d in (tmp_path / "sweeps").iterdir() if d.is_dir())
    assert len(dirs) == 3 and dirs[0].name == "same" and all(d.name.startswith("same-") for d in dirs[1:]), dirs
    for d in dirs:
        record = json.loads((d / "sweep.json").read_text())
        table = read_table(d / "results.csv")
        assert record["name"] == d.name and record["status"] == "finished", record
        assert len(table) == 2 and set(table["status"]) == {"done"}
        runs = query_runs(tmp_path / "aim", d.name)
        assert sorted(r["hash"] for r in runs) == sorted(table["aim_run"]), (d.name, runs)
        assert all(("exact_acc", "eval") in r["metrics"] for r in runs)


def test_interrupt_kill_and_resume_keep_every_trial_and_aim_run(ray_address_with_faults, tmp_path):
    """Issue 16 items 3 and 7, issue 13 (orphan Aim run) and fault 2: Ctrl-C, then `resume` with no
    name, SIGKILL of the driver, `resume` again: the sweep finishes, no finished trial runs twice,
    Optuna's history is whole, every row links to its Aim run and Aim shows one run per trial."""
    spec = spec_file(tmp_path, "stop", 3)
    raw = yaml.safe_load(Path(spec).read_text())
    raw["base"]["overrides"].update(LONG_TRIAL)
    write_spec(Path(spec), raw)
    d = tmp_path / "sweeps" / "stop"
    storage = ["--storage", str(tmp_path / "sweeps")]
    addr = ["--address", ray_address_with_faults]

    code = signal_when(start("run", spec, *addr, cwd=tmp_path, log=tmp_path / "run.log"), d, 1, signal.SIGINT)
    log = (tmp_path / "run.log").read_text()
    assert code == 130, log
    assert "Tuner.restore" not in log and "resume with: python -m sweeper resume stop" in log, log
    table = read_table(d / "results.csv")
    assert "interrupted" in set(table["status"]) and "stopped_early" not in set(table["status"]), table
    assert json.loads((d / "sweep.json").read_text())["status"] == "interrupted"
    ls = sweeper("ls", *storage, cwd=tmp_path)
    assert "interrupted" in ls.stdout, ls.stdout

    code = signal_when(start("resume", *storage, *addr, cwd=tmp_path, log=tmp_path / "resume1.log"), d, 2, signal.SIGKILL)
    assert code == -signal.SIGKILL, (tmp_path / "resume1.log").read_text()
    before = read_table(d / "results.csv")
    finished = before[before["status"] == "done"].set_index("trial_id")["ended_at"]

    last = sweeper("resume", *storage, *addr, cwd=tmp_path)
    assert last.returncode == 0, last.stdout + last.stderr
    after = read_table(d / "results.csv").set_index("trial_id")
    assert len(after) == 3 and set(after["status"]) == {"done"}, after
    assert (after.loc[finished.index, "ended_at"] == finished).all()  # finished trials were not run again
    runs = query_runs(tmp_path / "aim", "stop")
    assert sorted(r["hash"] for r in runs) == sorted(after["aim_run"]) and after["aim_run"].notna().all()
    assert len({r["sweep"]["trial_id"] for r in runs}) == len(runs) == 3
    assert {r["status"] for r in runs} == {"done"}
    orphans = [r for r in query_runs(tmp_path / "aim", "stop", archived=True) if r["archived"]]
    assert all(r["status"] == "orphaned" and r["sweep"]["trial_id"] not in after.index for r in orphans)
    assert json.loads((d / "aim_runs.json").read_text()).keys() >= set(after.index)
    study = _optuna_study(d)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3 and len({tuple(sorted(t.params.items())) for t in complete}) == 3


def _optuna_study(d: Path):
    """The Optuna study inside the newest searcher state Tune saved."""
    import ray.cloudpickle as pickle

    newest = sorted((d / "tune").glob("searcher-state-*.pkl"))[-1]
    state = pickle.loads(newest.read_bytes())
    found = [v for v in (state.values() if isinstance(state, dict) else []) if type(v).__name__ == "Study"]
    assert found, f"no optuna Study in {newest}: {list(state)}"
    return found[0]


def test_divergence_oom_and_the_failure_budget(ray_address_with_faults, tmp_path):
    """Issue 13 faults 3 and 4. Three configurations x seeds 0 and 1, one trial at a time; every
    seed-1 trial runs out of memory (simulated), lr=1e30 makes the loss NaN. A NaN loss marks its
    trial `diverged` (step and reason) and Optuna is told the configuration failed; an OOM fails its
    trial with the reason; the sweep goes on while failures stay within failure.max_failed_trials=1
    and stops cleanly, as `failed` with the reason, at the second; the third configuration never
    runs; the summary leaves out what diverged or failed."""
    lrs = [1.0e30, 3.0e-3, 2.0e-3]
    spec = spec_file(tmp_path, "faults", 3, space={"optim.lr": {"type": "categorical", "choices": lrs}},
                     seeds=[0, 1], failure={"max_retries": 0, "max_failed_trials": 1})
    raw = yaml.safe_load(Path(spec).read_text())
    raw["base"]["overrides"]["optim.warmup_steps"] = 0
    raw["search"]["points_to_evaluate"] = [{"optim.lr": lr} for lr in lrs]
    write_spec(Path(spec), raw)
    proc = sweeper("run", spec, "--address", ray_address_with_faults, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Trial task failed" in proc.stderr, proc.stderr  # one line per failure
    d = tmp_path / "sweeps" / "faults"
    table = read_table(d / "results.csv")
    by = {(r["param:optim.lr"], r["seed"]): r for _, r in table.iterrows()}
    diverged = by[(1e30, 0)]
    assert diverged["status"] == "diverged" and diverged["step"] == 10 and diverged["error"] == "train/loss is nan", diverged
    for lr in (1e30, 3e-3):
        oom = by[(lr, 1)]
        assert oom["status"] == "error" and "out of memory at step 0 (seed 1)" in oom["error"], oom
    assert by[(3e-3, 0)]["status"] == "done"  # the sweep went on after the first failure
    assert (2e-3, 0) not in by or by[(2e-3, 0)]["status"] in ("pending", "interrupted")  # ... and stopped at the second
    record = json.loads((d / "sweep.json").read_text())
    assert record["status"] == "failed" and "2 trials failed, more than failure.max_failed_trials=1" in record["reason"]
    assert "out of memory" in record["reason"]
    assert record["best"]["config"] == {"optim.lr": 3e-3} and record["best"]["seeds"] == 1  # no diverged/failed seed counts
    study = _optuna_study(d)
    assert [t.state.name for t in study.trials][:2] == ["FAIL", "FAIL"]  # a failed or diverged seed: no mean
    assert {r["status"] for r in query_runs(tmp_path / "aim", "faults")} >= {"done", "error", "diverged"}
    ls = sweeper("ls", "--storage", str(tmp_path / "sweeps"), cwd=tmp_path).stdout
    assert any(line.startswith("faults") and "failed" in line and "failure.max_failed_trials" in line
               for line in ls.splitlines()), ls


def test_aim_unavailable_then_aim_sync(ray_address_with_faults, tmp_path):
    """Issue 13 fault 6: an Aim repo that cannot be opened costs one warning, not the sweep; the
    metrics stay in Tune's results and `aim-sync` writes them to Aim once the repo is back."""
    repo = tmp_path / "aim"
    repo.mkdir()
    (repo / ".aim").write_text("not a repository")  # what a broken mount or a stray file looks like to Aim
    spec = spec_file(tmp_path, "noaim", 1)
    proc = sweeper("run", spec, "--address", ray_address_with_faults, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "Aim repo" in line and "unavailable" in line]
    assert len(warnings) == 1 and "python -m sweeper aim-sync noaim" in warnings[0], proc.stderr
    d = tmp_path / "sweeps" / "noaim"
    table = read_table(d / "results.csv")
    assert set(table["status"]) == {"done"} and table["eval/exact_acc"].notna().all() and table["aim_run"].isna().all()

    (repo / ".aim").unlink()
    sync = sweeper("aim-sync", "noaim", "--storage", str(tmp_path / "sweeps"), cwd=tmp_path)
    assert sync.returncode == 0 and "1 runs created" in sync.stdout, sync.stdout + sync.stderr
    runs = query_runs(repo, "noaim")
    table = read_table(d / "results.csv")
    assert sorted(r["hash"] for r in runs) == sorted(table["aim_run"])
    assert all({("exact_acc", "eval"), ("loss", "train")} <= set(r["metrics"]) for r in runs)
    _unindex_all_but_a_new_run(repo)  # the sweep's run is written but not indexed (a driver killed early)
    again = sweeper("aim-sync", str(d), cwd=tmp_path)  # idempotent: continues that run, no duplicate
    assert again.returncode == 0 and "0 runs created, 0 runs extended" in again.stdout, again.stdout
    assert len(query_runs(repo, "noaim")) == 1


def _unindex_all_but_a_new_run(repo: Path) -> None:
    """Leave `repo` with an index that holds only one new, unrelated run: Aim's get_run and queries
    then miss every other run, as they miss runs written after the last reindex."""
    import aim
    from aim.sdk.index_manager import RepoIndexManager

    from sweeper.aim.repo import release

    shutil.rmtree(repo / ".aim" / "meta" / "index")
    other = aim.Run(repo=str(repo), experiment="other", system_tracking_interval=None, capture_terminal_logs=False)
    other.close()
    try:
        RepoIndexManager.get_index_manager(aim.Repo.from_path(str(repo))).index(other.hash)
    finally:
        release(repo)
