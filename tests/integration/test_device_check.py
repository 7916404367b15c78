"""benchmarks/device_check.py works before it meets a GPU: its --cpu-smoke mode runs every section at
tiny shapes on the CPU (the packing sweeps on the test's Ray) and writes its JSON and Markdown."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_device_check_cpu_smoke_runs_every_section(ray_address, tmp_path):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([sys.executable, "benchmarks/device_check.py", "--cpu-smoke", "--out", str(tmp_path),
                           "--address", ray_address], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                          start_new_session=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((tmp_path / "device_check.json").read_text())
    assert set(result["sections"]) == {"throughput", "memory", "packing", "chains", "breadth", "replicas"}
    assert not result["errors"]
    s = result["sections"]
    assert all(v["puzzle_steps_per_s"] > 0 for v in s["throughput"]["sides"].values())
    assert {"ours_amp", "ours_reference_compiled"} <= set(s["throughput"]["sides"])
    assert len(s["packing"]["packed_puzzle_steps_per_s"]) == 2 and s["packing"]["alone_puzzle_steps_per_s"] > 0
    assert s["chains"]["k4_over_k1"] > 0 and s["breadth"]["b8_over_b1"] > 0
    table = (tmp_path / "device_check.md").read_text()
    assert "K = 4 chains vs K = 1" in table and "breadth 8 vs 1" in table
