"""The real command line: bad specs exit 2 with one line and no traceback; shipped specs pass --dry-run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import good, write_spec

from sweeper.cli import main
from trm_core.errors import run_cli

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


# ---- issue 16 (4-6) and issue 13: bad paths, names, addresses and --set forms, through the real CLI ----


def _one_line_exit_2(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def _tiny_spec(tmp_path, **update):
    raw = good()
    raw.update(storage=str(tmp_path / "sweeps"), aim={"repo": str(tmp_path / "aim")}, **update)
    return write_spec(tmp_path / "s.yaml", raw)


def test_storage_or_aim_repo_naming_a_file_exits_2_before_ray(tmp_path):
    spec = _tiny_spec(tmp_path)
    f = tmp_path / "a_file"
    f.write_text("keep me\n")
    t0 = time.time()
    _one_line_exit_2(_cli("run", spec, "--set", f"storage={f}", cwd=tmp_path), "storage", str(f), "is a file")
    _one_line_exit_2(_cli("run", spec, "--set", f"aim.repo={f}", cwd=tmp_path), "aim.repo", str(f), "is a file")
    _one_line_exit_2(_cli("run", spec, "--set", f"storage={f}/sub", cwd=tmp_path), "storage", "cannot")
    assert time.time() - t0 < 90  # no Ray start (today's traceback came after 18 s of it)
    assert f.read_text() == "keep me\n" and not (tmp_path / "sweeps").exists()


def test_unwritable_storage_exits_2(tmp_path):
    spec = _tiny_spec(tmp_path)
    _one_line_exit_2(_cli("run", spec, "--set", "storage=/proc/x", cwd=tmp_path), "storage", "/proc/x")


def test_spec_that_is_not_utf8_exits_2(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    _one_line_exit_2(_cli("run", str(bad), "--dry-run", cwd=tmp_path), str(bad), "UTF-8")


def test_name_with_separators_or_leading_dot_exits_2(tmp_path, capsys):
    spec = _tiny_spec(tmp_path)
    line = _one_line_exit_2(_cli("run", spec, "--name", "../escaped", cwd=tmp_path), "--name", "letters, digits", "'../escaped'")
    for name in ["a/b", ".hidden", "", "x" * 300, "sp ace", "..", "-dash"]:  # same code path, in-process
        assert run_cli(main, ["run", spec, f"--name={name}"]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--name: a sweep name must be" in err[0], (name, err)
    assert not any(tmp_path.rglob("sweep.json")) and not (tmp_path.parent / "escaped").exists(), line


def test_unreachable_address_fails_fast_naming_it(tmp_path):
    spec = _tiny_spec(tmp_path)
    t0 = time.time()
    line = _one_line_exit_2(_cli("run", spec, "--address", "127.0.0.1:1", cwd=tmp_path), "127.0.0.1:1", "ray start --head")
    assert time.time() - t0 < 30, line
    _one_line_exit_2(_cli("run", spec, "--address", "127.0.0.1:1", "--dry-run", cwd=tmp_path), "127.0.0.1:1")
    _one_line_exit_2(_cli("resume", "--address", "not an address", cwd=tmp_path), "--address")


def test_set_takes_several_values_after_one_flag_in_both_clis(tmp_path):
    spec = _tiny_spec(tmp_path)
    one = _cli("run", spec, "--dry-run", "--set", "search.num_samples=3", "seeds=[0,1]", "train.steps=30")
    many = _cli("run", spec, "--dry-run", "--set", "search.num_samples=3", "--set", "seeds=[0,1]", "--set", "train.steps=30")
    assert one.returncode == many.returncode == 0, one.stderr + many.stderr
    assert "3 configurations x 2 seeds [0, 1] = 6 trials" in one.stdout and one.stdout == many.stdout
    assert "steps: 30" in one.stdout
    # a value without '=' is named, with the hint (a positional swallowed by --set)
    _one_line_exit_2(_cli("run", "--set", "a=1", spec), "--set takes KEY=VALUE", "positional arguments go before --set")


def test_resume_without_a_name_and_nothing_to_resume(tmp_path):
    _one_line_exit_2(_cli("resume", "--storage", str(tmp_path)), "no interrupted sweep under")
