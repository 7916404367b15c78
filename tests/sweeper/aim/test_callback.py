"""The Aim callback on a real Aim repo: metric names and contexts, evaluation tables, run reopening,
and the run ids it hands to the results owner.

The Tune trial is a plain record here (trial_id, config, last_result): the fields the callback reads.
The real Ray path is covered by tests/integration.
"""

from __future__ import annotations

from types import SimpleNamespace

from sweep_helpers import TINY_OVERRIDES

from sweeper.aim.callback import AimCallback
from sweeper.aim.repo import query_runs, reindex
from sweeper.aim.runs import split_key
from sweeper.run.progress import ProgressLine
from sweeper.run.results import TrialResults
from sweeper.run.trial import SweepBase


def _results(tmp_path) -> TrialResults:
    from trm_core.config import load_config, set_value, to_dict

    cfg = load_config("sudoku4_tiny")
    for k, v in TINY_OVERRIDES.items():
        set_value(cfg, k, v)
    base = SweepBase(base=to_dict(cfg), seeds=[7, 8], cpu=1, gpu=0, metric="eval/exact_acc")
    return TrialResults(tmp_path, base, ProgressLine("sw", "eval/exact_acc", "max", 1))


def test_split_key_maps_namespaces_to_contexts():
    assert split_key("eval/exact_acc") == ("exact_acc", {"subset": "eval"})
    assert split_key("eval/halt_first/exact_acc") == ("halt_first/exact_acc", {"subset": "eval"})
    assert split_key("step") == ("step", {})


def test_callback_writes_one_run_per_trial_and_reopens_it(tmp_path):
    repo, state = tmp_path / "aim", tmp_path / "aim_runs.json"
    results = _results(tmp_path)
    cb = AimCallback(str(repo), "exp", "sw", "search", results, str(state))
    cb.setup()
    trial = SimpleNamespace(trial_id="t1", config={"optim.lr": 1e-3, "__trial_index__": 1}, last_result={"step": 20})
    cb.on_trial_start(0, [], trial)
    cb.on_trial_result(0, [], trial, {"step": 10, "eval/exact_acc": 0.5, "train/loss": 1.0, "training_iteration": 1,
                                      "eval/per_step": {"1": 0.2, "2": 0.5}})
    cb.on_experiment_end([trial])  # the driver stops (e.g. Ctrl-C): the run is closed, not finished
    first_hash = results.aim_runs["t1"]  # handed to the results owner in memory
    resumed = _results(tmp_path)
    again = AimCallback(str(repo), "exp", "sw", "search", resumed, str(state))  # a resumed sweep
    again.setup()
    assert resumed.aim_runs == {"t1": first_hash}  # the earlier run id, read back from aim_runs.json
    again.on_trial_result(0, [], trial, {"step": 20, "eval/exact_acc": 0.75, "train/loss": 0.5})
    again.on_trial_complete(0, [], trial)
    reindex(repo)
    runs = query_runs(repo, "sw")
    assert len(runs) == 1
    run = runs[0]
    assert run["hash"] == first_hash
    assert run["hparams"] == {"optim.lr": 1e-3, "seed": 8} and run["sweep"]["trial_id"] == "t1"
    assert {("exact_acc", "eval"), ("loss", "train")} <= set(run["metrics"])
    import aim

    stored = aim.Repo.from_path(str(repo)).get_run(run["hash"])
    acc = next(m for m in stored.metrics() if m.name == "exact_acc" and m.context.to_dict() == {"subset": "eval"})
    steps, values = acc.data.items_list()
    assert list(steps) == [10, 20] and list(values[0]) == [0.5, 0.75]  # one series across the restart
    from aim.storage.context import Context

    table = stored.get_text_sequence("per_step", Context({"subset": "eval"}))
    texts = [t.data for t in table.data.values_list()[0]]
    assert texts == ['{"1": 0.2, "2": 0.5}']  # the evaluation table, as JSON text
    assert stored.get("status") == "done"
