"""The spec's final_eval key: validated like the eval flags; metrics and Aim figures of one trial's engine run."""

from __future__ import annotations

import json

import pytest
from sweep_helpers import good

from sweeper.errors import SpecError
from sweeper.spec import validate


def with_final_eval(fe, **top):
    raw = good()
    raw["final_eval"] = fe
    raw.update(top)
    return raw


def test_final_eval_parses(tmp_path):
    spec = validate("s.yaml", with_final_eval({"depth": [4, 8], "breadth": 2, "select": ["halt_first", "oracle"],
                                               "act": True, "limit": 50}), cwd=tmp_path)
    assert spec.final_eval == {"depth": [4, 8], "breadth": 2, "select": ["halt_first", "oracle"], "act": True, "limit": 50}
    assert validate("s.yaml", good(), cwd=tmp_path).final_eval is None


@pytest.mark.parametrize("raw, path, words", [
    (with_final_eval({"depht": 4}), "final_eval.depht", "did you mean 'depth'"),
    (with_final_eval({"depth": 0}), "final_eval", "--depth must be >= 1, but got 0"),
    (with_final_eval({"depth": "deep"}), "final_eval", "final_eval.depth must be an integer or a list"),
    (with_final_eval({"select": ["halt_frist"]}), "final_eval.select[0]", "did you mean 'halt_first'"),
    (with_final_eval({"act": "yes"}), "final_eval", "final_eval.act has the wrong type"),
    (with_final_eval({"limit": -1}), "final_eval", "final_eval.limit must be an integer >= 0"),
    (with_final_eval({"depth": 4}, metric="eval_tts/halt_first/exact_acc"), "metric", "needs scheduler none"),
    (with_final_eval({"select": ["oracle"]}, metric="eval_tts/majority/exact_acc", scheduler="none"), "metric",
     "names rule 'majority'"),
    ({**good(), "metric": "eval_tts/halt_first/exact_acc", "scheduler": "none"}, "metric", "only with a final_eval"),
])
def test_bad_final_eval_is_one_precise_error(tmp_path, raw, path, words):
    with pytest.raises(SpecError) as err:
        validate("s.yaml", raw, cwd=tmp_path)
    assert f"s.yaml: {path}:" in str(err.value) and words in str(err.value), str(err.value)


def test_eval_tts_metric_with_final_eval_and_no_scheduler_is_accepted(tmp_path):
    raw = with_final_eval({"depth": 4, "select": "halt_first,oracle"}, metric="eval_tts/halt_first/exact_acc",
                          scheduler="none")
    assert validate("s.yaml", raw, cwd=tmp_path).metric == "eval_tts/halt_first/exact_acc"


def test_one_trials_engine_run_gives_metrics_and_aim_images(tmp_path, tiny_config):
    import aim

    from sweeper.aim.repo import ensure_repo
    from sweeper.aim.runs import track_figures
    from sweeper.run.trainable import final_eval_metrics
    from trm_core.train import train

    train(tiny_config(), out_dir=tmp_path / "run")
    out = final_eval_metrics(str(tmp_path / "run" / "checkpoints" / "step_00000004"),
                             {"depth": [2, 4], "breadth": 1, "select": ["last", "halt_first", "oracle"], "limit": 8})
    assert out["eval_tts/depth"] == 4 and out["eval_tts/n_puzzles"] == 8
    for rule in ("last", "halt_first", "oracle"):
        assert 0 <= out[f"eval_tts/{rule}/exact_acc"] <= out["eval_tts/oracle/exact_acc"] <= 1
        assert out[f"eval_tts/{rule}/avg_nfe"] > 0
    repo = ensure_repo(tmp_path / "aim")
    run = aim.Run(repo=str(repo), system_tracking_interval=None, capture_terminal_logs=False)
    track_figures(run, json.loads(out["eval_tts_figures"]), step=4)
    names = {name for name, ctx, _ in run.iter_sequence_info_by_type("aim.image") if ctx.to_dict() == {"subset": "eval_tts"}}
    run.close()
    assert {"accuracy_vs_depth", "accuracy_vs_nfe", "halting", "residuals"} <= names
