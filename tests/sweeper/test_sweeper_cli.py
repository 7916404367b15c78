"""The real command line: bad specs exit 2 with one line and no traceback; shipped specs pass --dry-run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import good, write_spec

from sweeper.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, cwd=ROOT):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-m", "sweeper", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _bad(tmp_path, name, mutate):
    raw = good()
    mutate(raw)
    return write_spec(tmp_path / f"{name}.yaml", raw)


CASES = [
    ("typo_top", lambda r: r.update(schedular={"type": "asha"}), "typo_top.yaml: schedular: is not a spec key", "did you mean 'scheduler'"),
    ("log_zero", lambda r: r["space"].update({"optim.lr": {"type": "float", "low": 0, "high": 1, "log": True}}),
     "log_zero.yaml: space[optim.lr].low: must be > 0 when log is true", "low=0"),
    ("not_config", lambda r: r["space"].update({"model.hiden_size": {"type": "int", "low": 8, "high": 16}}),
     "not_config.yaml: space[model.hiden_size]: is not a key of the trainer config", "did you mean 'model.hidden_size'"),
]


@pytest.mark.parametrize("name,mutate,start,hint", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_exits_2_with_one_line(tmp_path, name, mutate, start, hint):
    proc = _cli("run", _bad(tmp_path, name, mutate), "--dry-run")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert start in lines[0] and hint in lines[0], lines[0]


def test_unsatisfiable_resources_exit_2_before_any_trial(tmp_path):
    # 64 GPUs per trial: no machine here has them; `run` must refuse before starting Ray.
    spec = _bad(tmp_path, "gpus", lambda r: r["resources"].update(gpu=64))
    proc = _cli("run", spec, "--set", f"storage={tmp_path}/s", "--set", f"aim.repo={tmp_path}/aim", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "resources.gpu: the cluster can never run a trial: a trial needs 64 GPU" in proc.stderr


def test_bad_flag_and_unknown_sweep_are_one_line(tmp_path):
    assert main.__module__ == "sweeper.cli"
    proc = _cli("run", "--bogus")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = _cli("resume", "no-such-sweep", "--storage", str(tmp_path))
    assert proc.returncode == 2 and "no sweep 'no-such-sweep'" in proc.stderr and "Traceback" not in proc.stderr


def test_shipped_specs_dry_run(capsys):
    for spec in sorted((ROOT / "search_spaces").glob("*.yaml")):
        assert main(["run", str(spec), "--dry-run"]) == 0
        out = capsys.readouterr().out
        for words in ("base config", "space (", "resources per trial", "concurrency on this machine", "trials"):
            assert words in out, (spec.name, words)


def test_quickstart_dry_run_subprocess():
    proc = _cli("run", "search_spaces/quickstart.yaml", "--dry-run", "--set", "search.num_samples=10")
    assert proc.returncode == 0, proc.stderr
    assert "10 configurations x 1 seeds [0] = 10 trials" in proc.stdout
    assert "concurrency on this machine" in proc.stdout


def test_ls_with_no_sweeps(tmp_path, capsys):
    assert main(["ls", "--storage", str(tmp_path)]) == 0
    assert "no sweeps under" in capsys.readouterr().out
