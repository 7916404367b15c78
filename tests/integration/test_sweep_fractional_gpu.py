"""Fractional GPUs pack trials: with one logical GPU and 0.25 GPU per trial, four trials run at once.

Ray is started with `num_gpus=1` on this CPU machine (a logical GPU), so the trials fall back to
the CPU; what is checked is Ray's packing, through the start/end times the sweep records.
"""

from __future__ import annotations

import json

import pytest
from sweep_helpers import good, write_spec

from sweeper.cli import main
from sweeper.run.table import read_table
from sweeper.spec import load_spec

pytestmark = pytest.mark.integration


def test_quarter_gpu_runs_four_trials_concurrently(ray_one_logical_gpu, tmp_path):
    raw = good()
    raw.update(name="frac", seeds=[0], scheduler="none", storage=str(tmp_path / "sweeps"),
               aim={"repo": str(tmp_path / "aim"), "experiment": "frac"})
    raw["resources"] = {"cpu": 0.5, "gpu": 0.25}
    raw["search"] = {"sampler": "random", "seed": 1, "num_samples": 4}
    # Each trial trains for 12 s of wall time whatever the machine's speed, so that all four
    # overlap even when Ray starts their workers a few seconds apart on a loaded 2-core machine.
    raw["base"]["overrides"].update({"train.steps": 100_000, "train.eval_interval": 40, "train.time_budget_s": 12.0})
    spec_file = write_spec(tmp_path / "frac.yaml", raw)
    assert main(["run", spec_file, "--dry-run"]) == 0
    assert main(["run", spec_file]) == 0
    d = tmp_path / "sweeps" / "frac"
    table = read_table(d / "results.csv")
    # the time budget ends every trial before its 100,000 steps: none errored, all reported steps
    assert len(table) == 4 and set(table["status"]) == {"stopped_early"} and (table["step"] >= 40).all()
    times = json.loads((d / "trial_times.json").read_text())
    starts = [t["started_at"] for t in times.values()]
    ends = [t["ended_at"] for t in times.values()]
    # Every trial started before any trial ended: all four held a quarter of the GPU at once.
    assert len(starts) == 4 and max(starts) < min(ends), times


def test_whole_gpus_beyond_the_cluster_are_refused(ray_one_logical_gpu, tmp_path):
    raw = good()
    raw.update(storage=str(tmp_path / "s"), aim={"repo": str(tmp_path / "aim")})
    raw["resources"] = {"cpu": 1, "gpu": 2}
    spec_file = write_spec(tmp_path / "two.yaml", raw)
    from sweeper.errors import SpecError
    from sweeper.run.cluster import connect

    with pytest.raises(SpecError, match="resources.gpu: the cluster can never run a trial: a trial needs 2 GPU but the largest node has 1"):
        connect(load_spec(spec_file), None, False)
