"""The results table's summary ranks configurations by their mean over seeds; files are written atomically."""

from __future__ import annotations

import pandas as pd

from sweeper.results import summarize, write_atomic


def _table():
    return pd.DataFrame([
        {"trial_id": "a", "config_id": "cfg-1", "seed": 0, "status": "done", "eval/exact_acc": 0.9, "param:optim.lr": 1e-3},
        {"trial_id": "b", "config_id": "cfg-1", "seed": 1, "status": "done", "eval/exact_acc": 0.5, "param:optim.lr": 1e-3},
        {"trial_id": "c", "config_id": "cfg-2", "seed": 0, "status": "done", "eval/exact_acc": 0.8, "param:optim.lr": 3e-3},
        {"trial_id": "d", "config_id": "cfg-2", "seed": 1, "status": "stopped_early", "eval/exact_acc": 0.7, "param:optim.lr": 3e-3},
        {"trial_id": "e", "config_id": "cfg-3", "seed": 0, "status": "error", "eval/exact_acc": 0.99, "param:optim.lr": 1e-2},
    ])


def test_best_is_the_best_mean_over_seeds_not_the_best_single_run():
    best = summarize(_table(), "eval/exact_acc", "max")
    assert best["config_id"] == "cfg-2" and abs(best["mean"] - 0.75) < 1e-9 and best["seeds"] == 2
    assert best["config"] == {"optim.lr": 3e-3} and best["n_configs"] == 2  # errored trials do not count
    assert summarize(_table(), "eval/exact_acc", "min")["config_id"] == "cfg-1"


def test_write_atomic_leaves_only_the_final_files(tmp_path):
    write_atomic(_table(), tmp_path)
    write_atomic(_table().head(2), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.parquet"]
    assert len(pd.read_csv(tmp_path / "results.csv")) == 2 == len(pd.read_parquet(tmp_path / "results.parquet"))
