"""The results table: one row per trial (statuses, column order, ISO times), the summary ranks
configurations by their mean over seeds, and files are written atomically (whole or untouched)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from sweeper.run.table import fmt, summarize, top_table, trial_row, write_atomic
from sweeper.run.trial import DIVERGED_KEY, TrialSetup


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


# ---- the row of a trial: statuses, column order, ISO times (issue 16 items 7 and 8) ----


def _info(steps=20):
    return TrialSetup(config_id="cfg-1", seed=0, params={"optim.lr": 0.0030000379968058775}, steps=steps, config={})


def _trial(status, step, **extra):
    return SimpleNamespace(trial_id="t1", status=status, last_result={"step": step, "eval/exact_acc": 0.5, **extra})


@pytest.mark.parametrize("status,step,times,extra,expected", [
    ("TERMINATED", 20, {"ended_at": 2.0}, {}, "done"),
    ("TERMINATED", 10, {"ended_at": 2.0}, {}, "stopped_early"),
    ("TERMINATED", 10, {"interrupted": True}, {}, "interrupted"),
    ("TERMINATED", 10, {"ended_at": 2.0}, {DIVERGED_KEY: "train/loss is nan"}, "diverged"),
    ("ERROR", 10, {}, {}, "error"),
    ("PENDING", None, {}, {}, "pending"),
])
def test_trial_status(status, step, times, extra, expected):
    row = trial_row(_trial(status, step, **extra), _info(), "eval/exact_acc", {"started_at": 1.0, **times}, None)
    assert row["status"] == expected
    if expected == "diverged":
        assert row["error"] == "train/loss is nan" and DIVERGED_KEY not in row


def test_row_columns_in_documented_order_with_iso_times():
    t = _trial("TERMINATED", 20, **{"train/loss": 0.1, "perf/x": 3.0})
    row = trial_row(t, _info(), "eval/exact_acc", {"started_at": 1_700_000_000.0, "ended_at": 1_700_000_060.5}, "abc")
    assert list(row)[:12] == ["trial_id", "config_id", "seed", "aim_run", "status", "step", "steps_target", "retries",
                              "started_at", "ended_at", "wall_s", "error"]
    assert list(row)[12:] == ["param:optim.lr", "eval/exact_acc", "perf/x", "train/loss"]
    assert datetime.fromisoformat(row["started_at"]).timestamp() == 1_700_000_000 and row["wall_s"] == 60.5


def test_top_table_prints_meaningful_digits_and_stars_the_best():
    df = _table().assign(step=20, wall_s=[10.0, 12.0, 9.0, 8.0, 1.0],
                         **{"param:optim.lr": [0.0030000379968058775] * 2 + [0.001] * 2 + [0.1]})
    lines = top_table(df, "eval/exact_acc", "max")
    assert lines[1].split()[:2] == ["*", "cfg-2"] and "0.7500 +/- 0.0707" in lines[1] and "0.001" in lines[1]
    assert "0.003 " in lines[2] + " " and "0.0030000379968058775" not in "\n".join(lines)
    assert fmt(0.0030000379968058775) == "0.003" and fmt(64) == "64" and fmt(math.nan) == "-"


# ---- atomic writes when the disk is full (issue 13 fault 7) ----

WRITER = """
import resource, signal, sys
import pandas as pd
from pathlib import Path
from sweeper.run.table import write_atomic, write_json_atomic
from trm_core.errors import UserError
d = Path(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # writes past 2 kB fail (EFBIG), as on a full disk
big = pd.DataFrame({"x": ["y" * 100] * 100})
for write in (lambda: write_json_atomic(d / "sweep.json", {"big": "z" * 5000}), lambda: write_atomic(big, d)):
    try:
        write()
        print("no error")
    except UserError as exc:
        print("UserError", exc)
    except OSError as exc:
        print("OSError", exc)
"""


def test_result_files_are_whole_or_untouched_when_a_write_fails(tmp_path):
    write_atomic(_table(), tmp_path)
    (tmp_path / "sweep.json").write_text('{"status": "running"}')
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)})
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("UserError cannot write") and "sweep.json" in lines[0] and "File too large" in lines[0], proc
    assert lines[1].startswith(("UserError", "OSError")), proc  # the table write failed too
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old files intact, no temp files left
