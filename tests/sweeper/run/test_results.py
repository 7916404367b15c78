"""The results owner on plain trial records (no Ray): each trial resolved once, results.csv written with
the Aim run ids it was handed, trial_times.json, the failure budget, a resumed phase's state, the
trials an interrupt leaves unfinished. The real Tune path: tests/integration."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
from sweep_helpers import good

from sweeper.run import interrupt
from sweeper.run.progress import ProgressLine
from sweeper.run.results import FailureBudget, TrialResults
from sweeper.run.table import read_table
from sweeper.run.trial import TRIAL_INDEX, SweepBase
from sweeper.spec import validate

METRIC = "eval/exact_acc"


class CountingBase(SweepBase):
    """A SweepBase that counts its resolutions."""

    calls = 0

    def resolve(self, sample):
        CountingBase.calls += 1
        return super().resolve(sample)


@pytest.fixture()
def base(tmp_path):
    spec = validate("s.yaml", good(), cwd=tmp_path)
    plain = SweepBase.from_spec(spec, embedded=False)
    CountingBase.calls = 0
    return CountingBase(**plain.__dict__)


def _trial(tid, lr, index=0, status="RUNNING", **last):
    return SimpleNamespace(trial_id=tid, config={"optim.lr": lr, TRIAL_INDEX: index}, status=status,
                           last_result=last or None, error_file=None)


def _owner(tmp_path, base, max_failed=None, total=3):
    return TrialResults(tmp_path, base, ProgressLine("unit", METRIC, "max", total, stream=io.StringIO()), max_failed)


def test_each_trial_is_resolved_once_and_the_table_has_its_aim_run(tmp_path, base):
    results = _owner(tmp_path, base)
    results.setup()
    a, b = _trial("a", 1e-3), _trial("b", 2e-3, index=1)
    for t in (a, b):
        results.on_trial_start(0, [a, b], t)
    results.note_aim_runs({"a": "hash-a"})
    for step in (10, 20):
        for t in (a, b):
            t.last_result = {"step": step, METRIC: step / 40, "time/elapsed_s": 1.0}
            results.on_trial_result(0, [a, b], t, t.last_result)
    a.status = b.status = "TERMINATED"
    results.on_trial_complete(0, [a, b], a)
    results.on_trial_complete(0, [a, b], b)
    assert CountingBase.calls == 2  # many events and two table writes: one resolution per trial
    table = read_table(tmp_path / "results.csv").set_index("trial_id")
    assert list(table["status"]) == ["done", "done"] and list(table["step"]) == [20, 20]
    assert table.loc["a", "aim_run"] == "hash-a" and table.isna().loc["b", "aim_run"]
    assert table.loc["a", "config_id"] != table.loc["b", "config_id"] and list(table["seed"]) == [0, 1]
    times = json.loads((tmp_path / "trial_times.json").read_text())
    assert {"started_at", "ended_at", "first_result_at"} <= set(times["a"]) and times["b"]["last_step"] == 20
    assert results.line.best[:2] == (0.5, table.loc["a", "config_id"])  # the best so far, first to reach it


def test_the_failure_budget_reads_the_owners_count(tmp_path, base):
    results = _owner(tmp_path, base, max_failed=1)
    budget = FailureBudget(results)
    results.setup()
    trials = [_trial(t, 1e-3, status="ERROR") for t in "xyz"]
    results.on_trial_error(0, trials, trials[0])
    assert results.failed == 1 and not budget.stop_all()
    results.on_trial_error(0, trials, trials[1])
    assert results.failed == 2 and budget.stop_all()
    again = _owner(tmp_path, base, max_failed=1)  # a resumed phase counts the failures before it
    again.setup()
    assert again.failed == 2 and FailureBudget(again).stop_all()


def test_an_interrupt_marks_the_trials_it_stopped(tmp_path, base):
    results = _owner(tmp_path, base)
    results.setup()
    done, stopped = _trial("d", 1e-3), _trial("s", 2e-3)
    for t in (done, stopped):
        results.on_trial_start(0, [done, stopped], t)
        t.last_result = {"step": 10, METRIC: 0.5}
    done.last_result["step"] = 20
    done.status = stopped.status = "TERMINATED"
    results.on_trial_complete(0, [done, stopped], done)
    interrupt.INTERRUPTED.set()
    try:
        results.on_experiment_end([done, stopped])
    finally:
        interrupt.INTERRUPTED.clear()
    table = read_table(tmp_path / "results.csv").set_index("trial_id")
    assert (table.loc["d", "status"], table.loc["s", "status"]) == ("done", "interrupted")
