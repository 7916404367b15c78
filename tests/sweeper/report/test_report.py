"""`sweeper report` on synthetic sweeps with known numbers: grouping, the tricky inputs of the issue
(NaN, errors, divergence, one seed, conditional parameters, ASHA stops, a running sweep), per-rule
metric families, costs, and exports a user loads with pandas alone."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from report_helpers import A_VALUES, METRIC, trial, tricky_rows, write_sweep

from sweeper.report import data as rd
from sweeper.cli import main
from sweeper.report.metrics import eval_metrics, families
from sweeper.report.report import make_report


@pytest.fixture()
def tricky(tmp_path):
    write_sweep(tmp_path, "tricky", tricky_rows(), status="running")
    return tmp_path


def _report(root, name="tricky", **kw):
    sweep = rd.load(name, str(root))
    return sweep, make_report(sweep, root / name / "report", ["md", "html"], aim=False, **kw)


def test_outcomes_of_the_tricky_trials(tricky):
    sweep = rd.load("tricky", str(tricky))
    by_id = dict(zip(sweep.trials["trial_id"], sweep.trials["outcome"]))
    assert [by_id[f"a{i}"] for i in range(4)] == ["final"] * 4
    assert (by_id["b2"], by_id["b3"]) == ("stopped_early", "diverged")
    assert (by_id["d0"], by_id["d1"], by_id["d2"], by_id["d3"]) == ("nan_metric", "error", "unfinished", "unfinished")
    assert sweep.running  # sweep.json says running and its pid (this process) is alive


def test_group_statistics_are_the_known_numbers(tricky):
    _, out = _report(tricky)
    t = out["table"]
    # issue 26 item 7: replicated configurations first (0.93 over 4 seeds, 0.6 over 2), then the single-seed
    # one, although its 0.8 is higher; cfg-dddd has no final trial
    assert list(t.index) == ["cfg-aaaa", "cfg-bbbb", "cfg-cccc"]
    a = t.loc["cfg-aaaa"]
    assert a["n"] == 4 and a["mean"] == pytest.approx(0.93) and a["std"] == pytest.approx(math.sqrt(0.002 / 3))
    assert (a["min"], a["max"], a["seeds"]) == (0.90, 0.96, [0, 1, 2, 3])
    b = t.loc["cfg-bbbb"]  # the stopped seed (0.99) and the diverged seed are not counted
    assert b["n"] == 2 and b["mean"] == pytest.approx(0.6) and b["std"] == pytest.approx(math.sqrt(0.02))
    assert b["not_counted"] == 2
    c = t.loc["cfg-cccc"]
    assert c["n"] == 1 and math.isnan(c["std"]) and math.isnan(c["ci_low"])
    assert a["wall_s"] == pytest.approx(25.0) and a["device_s"] == pytest.approx(50.0)  # 2 CPUs per trial


def test_markdown_says_what_was_excluded_and_why(tricky):
    _, out = _report(tricky)
    md = (tricky / "tricky" / "report" / "report.md").read_text()
    assert "Still running" in md and "sample standard deviation (ddof = 1" in md
    row_c = next(line for line in md.splitlines() if line.startswith("| 3 | cfg-cccc"))
    assert "| 1 † | 0.8 | n/a | n/a |" in row_c  # one seed: marked, std and interval n/a
    assert "† one seed: not replicated, ranked after every configuration with two or more seeds" in md
    assert "Stopped early (1)" in md and "| cfg-bbbb | 2 | search | 30/100 | 0.99 |" in md
    assert "diverged" in md and "training diverged at step 50" in md and "RuntimeError: boom" in md
    assert "nan metric" in md.replace("_", " ")
    assert "Not finished (2: 1 running, 1 ended before its first report)" in md
    row_b = next(line for line in md.splitlines() if line.startswith("| 2 | cfg-bbbb"))
    assert "| – |" in row_b  # the conditional weight decay, not sampled
    assert set(out["images"]) == {"per_seed", "curves", "cost"}
    for _, path in out["images"].values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_rule_keys_are_grouped_by_pattern(tricky):
    assert families(["eval/exact_acc", "eval_tts/halt_first/exact_acc", "eval_tts/majority/cell_acc",
                     "train/win_rate/0", "eval/halt_first/exact_acc"]) == {
        "eval_tts": [("eval_tts/halt_first/exact_acc", "halt_first", "exact_acc"),
                     ("eval_tts/majority/cell_acc", "majority", "cell_acc")],
        "train": [("train/win_rate/0", "win_rate", "0")],
        "eval": [("eval/halt_first/exact_acc", "halt_first", "exact_acc")]}
    assert eval_metrics(["eval/exact_acc", "final/exact_acc", "train/loss", "eval_tts/x", "eval/halt_first/exact_acc"],
                        "eval/exact_acc") == ["final/exact_acc", "eval_tts/x"]
    _, out = _report(tricky)
    md = out["markdown"]
    assert "`eval_tts/<row>/<column>` metrics" in md and "`train/<row>/<column>` metrics" in md
    full = re.search(r"\| cfg-aaaa \| halt_first \| 4 \| 0.965 \| 0.01291 \| \[(\S+), (\S+)\] \| 0.95 \| 0.98 \|", md)
    assert full and 0.95 <= float(full[1]) < 0.965 < float(full[2]) <= 0.98  # each rule's full statistics
    halt_first = next(line for line in md.splitlines() if line.startswith("| cfg-aaaa | halt_first | 0.965 ±"))
    assert "0.01291 (4)" in halt_first  # 0.95..0.98: sample std sqrt(0.0005 / 3)
    assert "| cfg-aaaa | win_rate | 0.375 ± 0.3227 (4) | 0.625 ± 0.3227 (4) |" in md


def test_conditional_parameters_group_without_config_ids(tmp_path):
    rows = [trial(f"t{i}", None, i % 2, "done", 0.1 * i, {"optim.name": "adam_atan2", "optim.lr": 1e-3})
            for i in range(4)]
    rows += [trial("w", None, 0, "done", 0.9, {"optim.name": "adamw", "optim.lr": 1e-3, "optim.weight_decay": 0.1})]
    df = pd.DataFrame(rows).drop(columns=["config_id"])
    labels = rd.groups(df)
    assert labels.nunique() == 2 and len(set(labels[:4])) == 1 and labels[4] != labels[0]
    naive = df.groupby([c for c in df.columns if c.startswith("param:")]).size()
    assert naive.sum() == 1  # pandas' default groupby drops the four rows whose weight decay is NaN


def test_exports_load_with_pandas_alone(tricky):
    _, out = _report(tricky)
    d = tricky / "tricky" / "report"
    trials = pd.read_parquet(d / "trials.parquet")
    assert len(trials) == len(tricky_rows()) == len(pd.read_csv(d / "trials.csv"))
    assert list(trials.columns[:8]) == ["phase", "trial_id", "group", "seed", "status", "outcome", "step", METRIC]
    assert {"wall_s", "device_s", "param:optim.lr", "eval_tts/halt_first/exact_acc"} <= set(trials.columns)
    steps = pd.read_parquet(d / "steps.parquet")
    a0 = steps[steps["trial_id"] == "a0"]
    assert list(a0["step"]) == list(range(10, 101, 10)) and a0[METRIC].iloc[-1] == pytest.approx(0.90)
    summary = pd.read_csv(d / "summary.csv")
    row = summary[(summary["group"] == "cfg-aaaa") & (summary["metric"] == METRIC)].iloc[0]
    assert row["n"] == 4 and row["mean"] == pytest.approx(np.mean(A_VALUES)) and row["std"] == pytest.approx(np.std(A_VALUES, ddof=1))
    assert not list(d.glob(".*tmp*"))  # atomic writes leave no temp files


def test_replicate_phase_seeds_pool_with_the_search(tmp_path):
    a = {"optim.lr": 1e-3}
    write_sweep(tmp_path, "s", [trial("s0", "cfg-aaaa", 0, "stopped_early", 0.5, a, step=30),
                                trial("s1", "cfg-aaaa", 1, "done", 0.92, a)])
    write_sweep(tmp_path, "s", [trial("r0", "cfg-aaaa", 0, "done", 0.90, a), trial("r2", "cfg-aaaa", 2, "done", 0.94, a)],
                phase_dir="replicate_1")
    sweep, out = _report(tmp_path, "s")
    assert sweep.phases == ["search", "replicate_1"]
    row = out["table"].loc["cfg-aaaa"]
    assert row["n"] == 3 and row["mean"] == pytest.approx(0.92) and row["seeds"] == [0, 1, 2]
    assert "search 2, replicate_1 2" in out["markdown"]


def test_cli_report_and_bad_input(tricky, capsys):
    assert main(["report", "tricky", "--storage", str(tricky), "--format", "md", "--no-aim"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | cfg-aaaa |" in out and "md: " in out and not (tricky / "tricky" / "report" / "report.html").exists()
    from trm_core.errors import UserError

    with pytest.raises(UserError, match="--format must be md, html or md,html, but got 'pdf'"):
        main(["report", "tricky", "--storage", str(tricky), "--format", "pdf"])
    with pytest.raises(UserError, match=re.escape("--metric eval/exact_ac: sweep tricky has no such column (did you mean 'eval/exact_acc'?)")):
        main(["report", "tricky", "--storage", str(tricky), "--metric", "eval/exact_ac"])
    with pytest.raises(UserError, match="no sweep 'nope'"):
        main(["report", "nope", "--storage", str(tricky)])
    (tricky / "a_file").write_text("x")
    with pytest.raises(UserError, match="--out .*a_file: must be a folder we can write, but file exists"):
        main(["report", "tricky", "--storage", str(tricky), "--out", str(tricky / "a_file")])
    with pytest.raises(UserError, match="--seed must be an integer >= 0, but got -1"):
        main(["report", "tricky", "--storage", str(tricky), "--seed", "-1"])


def test_iso_timestamps_and_a_sweep_without_results_yet(tmp_path):
    rows = [trial("t0", "cfg-a", 0, "done", 0.5, {"optim.lr": 1e-3})]
    rows[0].update(started_at="2026-12-01T10:00:00+00:00", ended_at="2026-12-01T10:01:30.5+00:00")
    write_sweep(tmp_path, "iso", rows)
    assert rd.load("iso", str(tmp_path)).trials["wall_s"].tolist() == [90.5]
    (tmp_path / "iso" / "results.csv").unlink()  # a sweep that has not finished a trial yet
    sweep, out = _report(tmp_path, "iso")
    assert sweep.trials.empty and out["table"].empty and out["images"] == {}
    assert "No configuration has a trial trained to the end yet" in out["markdown"]


def test_bad_report_input_is_one_line_exit_2(tmp_path, one_line_error):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "sweeper", "report", "nope", "--storage", str(tmp_path)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
    one_line_error(proc, "no sweep 'nope'")


def test_all_digit_trial_ids_stay_text(tmp_path):
    write_sweep(tmp_path, "digits", [trial("01234567", "cfg-a", 0, "done", 0.5, {"optim.lr": 1e-3}),
                                     trial("89abcdef", "cfg-a", 1, "done", 0.7, {"optim.lr": 1e-3})])
    sweep = rd.load("digits", str(tmp_path))
    assert sweep.trials["trial_id"].tolist() == ["01234567", "89abcdef"]
    steps = rd.load_steps(sweep)
    assert set(steps["trial_id"]) == {"01234567", "89abcdef"} and len(steps) == 20  # both trial folders found
