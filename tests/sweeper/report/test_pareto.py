"""The Pareto front of a sweep with several objectives (sweeper/report/pareto.py) on synthetic sweeps
with known numbers: dominance under each objective's mode, ties, one seed, a missing objective,
stopped-early seeds left out, a replicate phase pooled, three objectives; `report A B` and `ls` on
such a sweep."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from report_helpers import METRIC, trial, write_sweep

from sweeper.report import data as rd
from sweeper.report.compare import make_comparison
from sweeper.report.pareto import DOMINATED, FRONT, INCOMPLETE, dominates, pareto_blocks, pareto_table
from sweeper.report.render import Table
from sweeper.report.report import final_trials
from sweeper.run.sweeps import format_ls

COST = "cost/train_s"


def _row(tid, cfg, seed, acc, cost, lr, status="done", step=100, **more):
    return trial(tid, cfg, seed, status, acc, {"optim.lr": lr, "model.hidden_size": 32}, step=step,
                 **{COST: cost, **more})


def _multi(root, name, rows, metrics=(METRIC, COST), modes=("max", "min"), replicate=None):
    d = write_sweep(root, name, rows)
    if replicate:
        write_sweep(root, name, replicate, phase_dir="replicate_1")
    record = json.loads((d / "sweep.json").read_text())
    record.update(metrics=list(metrics), modes=list(modes))
    (d / "sweep.json").write_text(json.dumps(record))
    return rd.load(name, str(root))


ROWS = [
    # A: (0.91, 11) front; D: (0.91, 11), the same means: neither dominates, both front
    _row("a0", "cfg-aaaa", 0, 0.90, 10.0, 1e-3), _row("a1", "cfg-aaaa", 1, 0.92, 12.0, 1e-3),
    _row("d0", "cfg-dddd", 0, 0.91, 11.0, 4e-3), _row("d1", "cfg-dddd", 1, 0.91, 11.0, 4e-3),
    # B: (0.8, 5) front: cheapest; its stopped seed (0.99 at 1 s) does not count
    _row("b0", "cfg-bbbb", 0, 0.80, 5.0, 2e-3), _row("b1", "cfg-bbbb", 1, 0.80, 5.0, 2e-3),
    _row("b2", "cfg-bbbb", 2, 0.99, 1.0, 2e-3, status="stopped_early", step=30),
    # C: (0.85, 13): A and D both beat it; A is named (first of the two in the table's order)
    _row("c0", "cfg-cccc", 0, 0.85, 12.0, 3e-3), _row("c1", "cfg-cccc", 1, 0.85, 14.0, 3e-3),
    # E: one seed, (0.7, 20): dominated by all four
    _row("e0", "cfg-eeee", 0, 0.70, 20.0, 5e-3),
    # F: the best accuracy but no cost value: cannot be placed
    _row("f0", "cfg-ffff", 0, 0.95, float("nan"), 6e-3), _row("f1", "cfg-ffff", 1, 0.96, float("nan"), 6e-3),
]


def test_dominance_follows_each_mode():
    assert dominates([0.9, 10], [0.8, 12], ["max", "min"]) and not dominates([0.8, 12], [0.9, 10], ["max", "min"])
    assert not dominates([0.9, 10], [0.9, 10], ["max", "min"])  # equal: neither
    assert dominates([0.9, 10], [0.9, 11], ["max", "min"])  # equal in one, better in the other
    assert not dominates([0.9, 12], [0.8, 10], ["max", "min"])  # a trade-off
    assert dominates([0.8, 12], [0.9, 10], ["min", "max"])
    # the same seeds' values averaged in another order differ in the last bit: not a domination
    assert 0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1
    assert not dominates([(0.1 + 0.2 + 0.3) / 3, 5.0], [(0.3 + 0.2 + 0.1) / 3, 5.0], ["max", "min"])
    assert not dominates([(0.3 + 0.2 + 0.1) / 3, 5.0], [(0.1 + 0.2 + 0.3) / 3, 5.0], ["max", "min"])


def test_report_metric_takes_that_objectives_mode(tmp_path):
    _multi(tmp_path, "multi", ROWS)
    cost = rd.load("multi", str(tmp_path), metric=COST)
    assert (cost.metric, cost.mode) == (COST, "min")  # ranked cheapest first, not by the first objective's max
    assert rd.load("multi", str(tmp_path)).mode == "max"


def test_front_dominated_and_incomplete_with_the_known_means(tmp_path):
    sweep = _multi(tmp_path, "multi", ROWS)
    final, _ = final_trials(sweep)
    t = pareto_table(sweep, final, seed=0).set_index("group")
    # front first (by accuracy, best first; A and D tie, by name), then dominated, then incomplete
    assert list(t.index) == ["cfg-aaaa", "cfg-dddd", "cfg-bbbb", "cfg-cccc", "cfg-eeee", "cfg-ffff"]
    assert list(t["pareto"]) == [FRONT, FRONT, FRONT, DOMINATED, DOMINATED, INCOMPLETE]
    assert t.loc["cfg-cccc", "dominated_by"] == "cfg-aaaa" and t.loc["cfg-cccc", "n_dominating"] == 2
    assert t.loc["cfg-eeee", "dominated_by"] == "cfg-aaaa" and t.loc["cfg-eeee", "n_dominating"] == 4
    assert t.loc["cfg-bbbb", f"{METRIC}:mean"] == pytest.approx(0.8) and t.loc["cfg-bbbb", f"{COST}:n"] == 2  # not b2
    assert t.loc["cfg-aaaa", f"{COST}:mean"] == pytest.approx(11.0) and t.loc["cfg-aaaa", f"{COST}:std"] == pytest.approx(2 ** 0.5)
    assert t.loc["cfg-aaaa", f"{COST}:ci_low"] >= 10.0 and t.loc["cfg-aaaa", f"{COST}:ci_high"] <= 12.0
    assert pd.isna(t.loc["cfg-eeee", f"{COST}:ci_low"]) and t.loc["cfg-eeee", "seeds"] == "0"
    assert t.loc["cfg-ffff", f"{COST}:n"] == 0 and t.loc["cfg-ffff", "dominated_by"] == ""
    assert t.loc["cfg-cccc", "param:optim.lr"] == 3e-3


def test_blocks_name_the_dominating_configuration_and_draw_the_plot(tmp_path):
    sweep = _multi(tmp_path, "multi", ROWS)
    final, _ = final_trials(sweep)
    blocks, images = pareto_blocks(sweep, final, 0, tmp_path / "plots")
    table = next(b for b in blocks if isinstance(b, Table))
    assert table.header[:3] == ["#", "config", "optim.lr"]  # the varying parameter, not hidden_size
    assert f"{METRIC} (max)" in table.header and f"{COST} (min)" in table.header
    verdicts = {row[1]: row[table.header.index("Pareto")] for row in table.rows}
    assert verdicts["cfg-cccc"] == "dominated by #1 cfg-aaaa" and verdicts["cfg-bbbb"] == "front"
    assert verdicts["cfg-ffff"] == "no value for every objective"
    assert [row[table.header.index("n")] for row in table.rows if row[1] == "cfg-eeee"] == ["1 †"]
    text = " ".join(b.text for b in blocks if hasattr(b, "text"))
    assert "3 of 6" in text and "`model.hidden_size` = 32" in text
    caption, path = images["pareto"]
    assert path == tmp_path / "plots" / "pareto.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_objective_gives_nothing(tmp_path):
    write_sweep(tmp_path, "single", ROWS)
    sweep = rd.load("single", str(tmp_path))
    assert sweep.objectives == [METRIC] and sweep.modes == ["max"]
    final, _ = final_trials(sweep)
    assert pareto_blocks(sweep, final, 0, tmp_path / "plots") == ([], {})
    assert pareto_table(sweep, final).empty and not (tmp_path / "plots").exists()


def test_replicate_seeds_are_pooled_and_three_objectives_are_all_in_the_table(tmp_path):
    third = "eval/avg_steps"
    rows = [_row("a0", "cfg-aaaa", 0, 0.9, 10.0, 1e-3, **{third: 4.0}),
            _row("b0", "cfg-bbbb", 0, 0.8, 20.0, 2e-3, **{third: 2.0}),  # worse in two, better in the third
            _row("c0", "cfg-cccc", 0, 0.8, 20.0, 3e-3, **{third: 5.0})]  # dominated by A in all three
    rep = [_row("r1", "cfg-bbbb", 1, 0.6, 30.0, 2e-3, **{third: 2.0})]  # B over 2 seeds: (0.7, 25, 2)
    sweep = _multi(tmp_path, "three", rows, (METRIC, COST, third), ("max", "min", "min"), replicate=rep)
    final, _ = final_trials(sweep)
    t = pareto_table(sweep, final).set_index("group")
    assert t.loc["cfg-bbbb", f"{METRIC}:n"] == 2 and t.loc["cfg-bbbb", f"{METRIC}:mean"] == pytest.approx(0.7)
    assert dict(t["pareto"]) == {"cfg-aaaa": FRONT, "cfg-bbbb": FRONT, "cfg-cccc": DOMINATED}
    blocks, images = pareto_blocks(sweep, final, 0, tmp_path / "plots")
    table = next(b for b in blocks if isinstance(b, Table))
    assert f"{third} (min)" in table.header
    assert any("plot shows the first two" in getattr(b, "text", "") for b in blocks) and images


def test_compare_and_ls_work_on_a_multi_objective_sweep(tmp_path):
    _multi(tmp_path, "multi", ROWS)
    out = make_comparison("multi:cfg-aaaa", "multi:cfg-cccc", None, ["md"], storage=str(tmp_path), aim=False)
    metrics = list(out["table"]["metric"])
    assert metrics[:2] == [METRIC, COST]  # the other objective right after the first
    listing = format_ls(tmp_path)
    assert f"{METRIC} (max), {COST} (min)" in listing
