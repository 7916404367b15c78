"""The Aim adapter on a real Aim repo: metric names and contexts, evaluation tables, run reopening.

The Tune trial is a plain record here (trial_id, config, last_result): the fields the callback reads.
The real Ray path is covered by tests/integration.
"""

from __future__ import annotations

from types import SimpleNamespace

from sweep_helpers import TINY_OVERRIDES

from sweeper.aim_log import AimCallback, _split_key, query_runs, reindex
from sweeper.trainable import TrialSetup


def _setup():
    from trm_core.config import load_config, set_value, to_dict

    cfg = load_config("sudoku4_tiny")
    for k, v in TINY_OVERRIDES.items():
        set_value(cfg, k, v)
    return TrialSetup(base=to_dict(cfg), seeds=[7, 8], cpu=1, gpu=0)


def test_split_key_maps_namespaces_to_contexts():
    assert _split_key("eval/exact_acc") == ("exact_acc", {"subset": "eval"})
    assert _split_key("eval/halt_first/exact_acc") == ("halt_first/exact_acc", {"subset": "eval"})
    assert _split_key("step") == ("step", {})


def test_callback_writes_one_run_per_trial_and_reopens_it(tmp_path):
    repo, state = tmp_path / "aim", tmp_path / "aim_runs.json"
    cb = AimCallback(str(repo), "exp", "sw", _setup(), str(state))
    cb.setup()
    trial = SimpleNamespace(trial_id="t1", config={"optim.lr": 1e-3, "__trial_index__": 1}, last_result={"step": 20})
    cb.on_trial_start(0, [], trial)
    cb.on_trial_result(0, [], trial, {"step": 10, "eval/exact_acc": 0.5, "train/loss": 1.0, "training_iteration": 1,
                                      "eval/per_step": {"1": 0.2, "2": 0.5}})
    cb.on_experiment_end([trial])  # the driver stops (e.g. Ctrl-C): the run is closed, not finished
    again = AimCallback(str(repo), "exp", "sw", _setup(), str(state))  # a resumed sweep
    again.setup()
    again.on_trial_result(0, [], trial, {"step": 20, "eval/exact_acc": 0.75, "train/loss": 0.5})
    again.on_trial_complete(0, [], trial)
    reindex(repo)
    runs = query_runs(repo, "sw")
    assert len(runs) == 1
    run = runs[0]
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


_WRITE_RUNS = """
import sys
import aim
repo = sys.argv[1]
for i in range(9):
    run = aim.Run(repo=repo, experiment="x", system_tracking_interval=None, capture_terminal_logs=False)
    run["sweep"] = {"name": f"s{i % 3}", "trial_id": str(i)}
    run.track(1.0, name="exact_acc", step=0, context={"subset": "eval"})
    run.close()
"""

_REINDEX = "import sys\nfrom sweeper.aim_log import reindex\nfor _ in range(2):\n    reindex(sys.argv[1])\n"


def test_sweeps_that_index_one_repo_at_once_leave_every_run_listed(tmp_path):
    """Three sweeps that end together each rebuild the shared repo's index (three processes, real Aim).
    Without sweeper.aim_log.index_lock one of them failed on RocksDB's lock, another hung, and the
    index could lose runs, which queries and the UI then do not list (CI, three sweeps of one spec)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from sweeper.aim_log import ensure_repo

    repo = ensure_repo(tmp_path / "aim")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    subprocess.run([sys.executable, "-c", _WRITE_RUNS, str(repo)], env=env, check=True, timeout=300)
    procs = [subprocess.Popen([sys.executable, "-c", _REINDEX, str(repo)], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    try:
        errors = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert [len(query_runs(repo, f"s{i}")) for i in range(3)] == [3, 3, 3]


def test_reindex_of_given_runs_adds_them_and_keeps_the_rest(tmp_path):
    """A sweep's end indexes its own runs only: they become visible, runs indexed before stay, and
    a run nobody indexed is not listed yet (so the test sees which runs each call indexed)."""
    import aim

    from sweeper.aim_log import ensure_repo

    repo = ensure_repo(tmp_path / "aim")

    def write(name: str) -> str:
        run = aim.Run(repo=str(repo), experiment="x", system_tracking_interval=None, capture_terminal_logs=False)
        run["sweep"] = {"name": name, "trial_id": "0"}
        run.close()
        return run.hash

    first = write("a")
    reindex(repo, [first])
    second, third = write("b"), write("c")
    reindex(repo, [second, "0" * 24])  # a hash with no run (e.g. a deleted one) is skipped
    assert [len(query_runs(repo, name)) for name in "abc"] == [1, 1, 0]
    reindex(repo)  # the full rebuild lists every run
    assert [len(query_runs(repo, name)) for name in "abc"] == [1, 1, 1]
