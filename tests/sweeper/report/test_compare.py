"""`sweeper report A B`: two sweeps, or two configurations of one sweep, with known numbers."""

from __future__ import annotations

import math

import pytest
from report_helpers import A_VALUES, METRIC, trial, write_sweep
from scipy import stats as sps

from sweeper.cli import main
from sweeper.report.compare import make_comparison
from trm_core.errors import UserError

B_VALUES = [0.80, 0.82, 0.84, 0.86]


@pytest.fixture()
def two(tmp_path):
    k1, k4 = {"model.n_chains": 1, "optim.lr": 1e-3}, {"model.n_chains": 4, "optim.lr": 1e-3}
    rows = [trial(f"k1s{i}", "cfg-k1", i, "done", v, k1, **{"eval_tts/halt_first/exact_acc": v + 0.01})
            for i, v in enumerate(B_VALUES)]
    rows += [trial(f"k4s{i}", "cfg-k4", i, "done", v, k4, **{"eval_tts/halt_first/exact_acc": v + 0.02})
             for i, v in enumerate(A_VALUES)]
    rows += [trial("k4x", "cfg-k4", 4, "stopped_early", 0.1, k4, step=30)]
    write_sweep(tmp_path, "wta", rows)
    write_sweep(tmp_path, "base", [trial(f"b{i}", "cfg-base", i, "done", v, {"optim.lr": 1e-3})
                                   for i, v in enumerate(B_VALUES)])
    return tmp_path


def test_two_groups_of_one_sweep(two):
    out = make_comparison("wta:model.n_chains=1", "wta:model.n_chains=4", None, ["md", "html"],
                          storage=str(two), aim=False)
    assert out["a"].group == "cfg-k1" and out["b"].group == "cfg-k4" and len(out["b"].final) == 4  # stopped seed out
    row = out["table"].iloc[0]
    assert row["metric"] == METRIC and row["diff"] == pytest.approx(0.10)
    se = math.sqrt(2 * 0.002 / 3 / 4)
    assert row["welch_t"] == pytest.approx(0.10 / se) and row["welch_df"] == pytest.approx(6)
    assert row["welch_p"] == pytest.approx(2 * sps.t.sf(0.10 / se, 6)) and row["p_improve"] == 1.0
    assert row["a_std"] == pytest.approx(math.sqrt(0.002 / 3))
    assert 0 < row["diff_ci_low"] <= 0.10 <= row["diff_ci_high"]
    rule = out["table"].set_index("metric").loc["eval_tts/halt_first/exact_acc"]
    assert rule["diff"] == pytest.approx(0.11)  # per-rule keys are compared too
    assert {"wall_s", "device_s"} <= set(out["table"]["metric"])
    md = (out["dir"] / "report.md").read_text()
    assert "a seed of B scores higher than a seed of A with probability 1" in md
    assert "A = `wta:model.n_chains=1`: configuration cfg-k1" in md and (out["dir"] / "report.html").exists()
    assert set(out["images"]) == {"per_seed", "curves"}


def test_two_sweeps_best_of_several_is_flagged(two):
    out = make_comparison("base", "wta", two / "cmp", ["md"], storage=str(two), aim=False)
    assert out["b"].group == "cfg-k4" and out["b"].candidates == 2  # the best of the two configurations
    assert out["table"].iloc[0]["diff"] == pytest.approx(0.10)
    md = (two / "cmp" / "report.md").read_text()
    assert "the best of 2 configurations" in md and "flattered" in md


def test_one_seed_side_has_no_test(tmp_path):
    write_sweep(tmp_path, "one", [trial("o", "cfg-o", 0, "done", 0.5, {"optim.lr": 1e-3})])
    write_sweep(tmp_path, "many", [trial(f"m{i}", "cfg-m", i, "done", v, {"optim.lr": 2e-3}) for i, v in enumerate(A_VALUES)])
    out = make_comparison("one", "many", None, ["md"], storage=str(tmp_path), aim=False)
    row = out["table"].iloc[0]
    assert row["a_n"] == 1 and math.isnan(row["a_std"]) and math.isnan(row["welch_p"]) and row["p_improve"] == 1.0
    assert "Welch's test needs two seeds on each side" in out["markdown"]


def test_bad_selectors_are_one_line_errors(two):
    with pytest.raises(UserError, match="'model.n_chain' is not a parameter of the sweep"):
        make_comparison("wta:model.n_chain=1", "base", None, ["md"], storage=str(two), aim=False)
    with pytest.raises(UserError, match="no trial has these parameter values"):
        make_comparison("wta:model.n_chains=2", "base", None, ["md"], storage=str(two), aim=False)
    with pytest.raises(UserError, match="no configuration id starts with 'cfg-zz'"):
        make_comparison("wta:cfg-zz", "base", None, ["md"], storage=str(two), aim=False)
    with pytest.raises(UserError, match="report takes one sweep, or two sides to compare, but got 3"):
        main(["report", "a", "b", "c", "--storage", str(two)])


def test_cli_compare_by_config_id(two, capsys):
    assert main(["report", "wta:cfg-k1", "wta:cfg-k4", "--storage", str(two), "--no-aim"]) == 0
    out = capsys.readouterr().out
    assert "# Comparison: wta:cfg-k1 vs wta:cfg-k4" in out and f"| {METRIC} |" in out
    assert (two / "wta" / "compare" / "wta_cfg-k1-vs-wta_cfg-k4" / "comparison.parquet").exists()
