"""A real sweep with `final_eval`: each trial runs the test-time scaling engine after training, and its
eval_tts metrics reach Tune's results, Optuna (as the objective) and Aim (metrics and images)."""

from __future__ import annotations

import json

import aim
import pandas as pd
import pytest
from sweep_helpers import good, write_spec

from sweeper.aim.repo import query_runs
from sweeper.cli import main

pytestmark = pytest.mark.integration

FINAL_EVAL = {"depth": [2, 4], "breadth": 1, "select": ["last", "halt_first", "majority", "oracle"], "limit": 16}


def sweep(tmp_path, name, **over):
    raw = good()
    raw.update(name=name, seeds=[0], storage=str(tmp_path / "sweeps"), aim={"repo": str(tmp_path / "aim")},
               final_eval=dict(FINAL_EVAL), **over)
    raw["search"] = {"sampler": "random", "seed": 0, "num_samples": 1}
    assert main(["run", write_spec(tmp_path / f"{name}.yaml", raw)]) == 0
    return pd.read_csv(tmp_path / "sweeps" / name / "results.csv")


def test_final_eval_after_asha_training_reaches_results_and_aim(ray_cluster, tmp_path):
    csv = sweep(tmp_path, "tts_asha")  # ASHA stops the trial at max_t: the engine must have run before
    assert len(csv) == 1 and csv["status"][0] == "done"
    for rule in FINAL_EVAL["select"]:
        assert 0 <= csv[f"eval_tts/{rule}/exact_acc"][0] <= csv["eval_tts/oracle/exact_acc"][0]
    assert csv["eval_tts/n_puzzles"][0] == 16 and "eval_tts_figures" not in csv
    (run_info,) = query_runs(tmp_path / "aim", "tts_asha")
    assert {("halt_first/exact_acc", "eval_tts"), ("oracle/avg_nfe", "eval_tts"), ("exact_acc", "eval")} <= set(run_info["metrics"])
    run = aim.Repo.from_path(str(tmp_path / "aim")).get_run(run_info["hash"])
    images = {n for n, ctx, _ in run.iter_sequence_info_by_type("aim.image") if ctx.to_dict() == {"subset": "eval_tts"}}
    assert {"accuracy_vs_depth", "accuracy_vs_nfe", "halting", "residuals"} <= images


def test_an_eval_tts_metric_can_be_the_objective(ray_cluster, tmp_path):
    csv = sweep(tmp_path, "tts_objective", metric="eval_tts/halt_first/exact_acc", scheduler="none")
    record = json.loads((tmp_path / "sweeps" / "tts_objective" / "sweep.json").read_text())
    assert record["status"] == "finished" and record["errors"] == 0
    assert record["best"]["mean"] == pytest.approx(csv["eval_tts/halt_first/exact_acc"][0])
