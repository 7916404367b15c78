"""The chaos soak (tools/chaos_soak.py), shortened for CI: 16 trials under one fault of each kind that
a sweep survives whole (SIGKILL and SIGTERM of a trial's worker, SIGKILL of the driver then `resume`,
the Aim repo read-only for a while), then the soak's own checks: every configuration x seed done
exactly once, each results.csv row linking its Aim run, one COMPLETE Optuna trial per configuration,
no partial checkpoint, `sweeper report` runs. Not here: a full results disk, which can cut Ray Tune's
own experiment state short (Tune copies it in place), after which `resume` refuses the sweep
(docs/RELIABILITY.md, with the long runs by hand)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_loses_nothing(tmp_path):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "chaos_soak.py"), "--configs", "8", "--seeds", "2",
                           "--steps", "400", "--faults", "4", "--window-s", "60", "--seed", "1",
                           "--kinds", "sigkill_worker,sigterm_worker,kill_driver,aim_readonly",
                           "--out", str(tmp_path / "soak")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr[-3000:]
    assert proc.returncode == 0 and "nothing lost" in out, out
    lines = proc.stdout.splitlines()
    for kind in ("sigkill_worker: trial", "sigterm_worker: trial", "kill_driver: SIGKILL", "aim_readonly: for"):
        assert any(kind in line for line in lines), (kind, out)  # each fault hit the running sweep
    assert sum(line.startswith("check ok") for line in lines) == 5, out


@pytest.mark.parametrize("args, words", [(["--kinds", "sigkill_worker,flood"], "--kinds must be among"),
                                         (["--faults", "0"], "--faults must be at least 1")])
def test_bad_flags_are_one_line(args, words, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "chaos_soak.py"), *args, "--out", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()  # refused before anything is written
