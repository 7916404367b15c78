"""A real small sweep, then `replicate` (interrupted once and resumed) and `report` through the CLI:
real Ray (one local Ray per module, 2 CPUs), Optuna, Aim and the trainer on the 4x4 tiny preset.

2 configurations x seed 0 in the search; `replicate --top 2 --seeds 0,1` runs the 2 missing
(configuration, seed) pairs; the report's numbers are checked against the raw results tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sweep_helpers import LONG_TRIAL, good, interrupt_when_a_trial_ends, write_spec

from sweeper.aim.repo import query_runs
from sweeper.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def replicated(ray_cluster, tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    raw = good()
    raw.update(name="rep", seeds=[0], scheduler="none", storage=str(d / "sweeps"),
               aim={"repo": str(d / "aim"), "experiment": "rep"})
    raw["space"] = {"optim.lr": {"type": "float", "low": 1e-3, "high": 3e-3, "log": True}}
    raw["base"]["overrides"].update(LONG_TRIAL)  # the replicate phase is interrupted while a trial trains
    raw["search"] = {"sampler": "random", "seed": 0, "num_samples": 2, "max_concurrent": 1}  # one trial at a time
    spec = write_spec(d / "rep.yaml", raw)
    assert main(["run", spec]) == 0
    sweep_dir = d / "sweeps" / "rep"
    args = ["replicate", "rep", "--top", "2", "--seeds", "0,1", "--storage", str(d / "sweeps")]
    interrupt_when_a_trial_ends(sweep_dir / "replicate_1" / "trial_times.json")
    first_rc = main(args)
    before = pd.read_csv(sweep_dir / "replicate_1" / "results.csv", dtype={"trial_id": str})
    phase_after_interrupt = json.loads((sweep_dir / "replicate_1" / "phase.json").read_text())["status"]
    second_rc = main(args)
    return {"dir": d, "sweep_dir": sweep_dir, "rcs": (first_rc, second_rc), "before": before,
            "phase_after_interrupt": phase_after_interrupt, "args": args}


def test_replicate_runs_the_missing_pairs_and_resumes(replicated):
    assert replicated["rcs"] == (1, 0) and replicated["phase_after_interrupt"] == "interrupted"
    d = replicated["sweep_dir"]
    search = pd.read_csv(d / "results.csv", dtype={"trial_id": str})
    rep = pd.read_csv(d / "replicate_1" / "results.csv", dtype={"trial_id": str})
    assert len(rep) == 2 and set(rep["status"]) == {"done"} and (rep["step"] == LONG_TRIAL["train.steps"]).all()
    assert sorted(zip(rep["config_id"], rep["seed"])) == sorted((c, 1) for c in search["config_id"])
    first = replicated["before"][replicated["before"]["ended_at"].notna() & (replicated["before"]["status"] == "done")]
    kept = rep.set_index("trial_id").loc[first["trial_id"]]
    assert len(first) >= 1 and list(kept["ended_at"]) == list(first["ended_at"])  # not run again
    assert json.loads((d / "replicate_1" / "phase.json").read_text())["status"] == "finished"
    assert main(replicated["args"]) == 0 and not (d / "replicate_2").exists()  # nothing left to run


def test_replicates_are_tagged_in_the_same_aim_experiment(replicated):
    runs = query_runs(replicated["dir"] / "aim", "rep")
    assert len(runs) == 4 and {r["experiment"] for r in runs} == {"rep"}
    phases = sorted(r["sweep"].get("phase", "search") for r in runs)
    assert phases == ["replicate_1"] * 2 + ["search"] * 2
    rep = pd.read_csv(replicated["sweep_dir"] / "replicate_1" / "results.csv", dtype={"trial_id": str})
    search = pd.read_csv(replicated["sweep_dir"] / "results.csv", dtype={"trial_id": str})
    by_hash = {r["hash"]: r for r in runs}
    rows = pd.concat([search, rep])
    assert rows["aim_run"].notna().all()  # every row links its Aim run, also those run after the resume
    for _, row in rows.iterrows():
        assert by_hash[row["aim_run"]]["sweep"]["config_id"] == row["config_id"]
        assert by_hash[row["aim_run"]]["hparams"]["seed"] == row["seed"]


def test_report_numbers_match_the_raw_tables(replicated, capsys):
    d = replicated["dir"]
    assert main(["report", "rep", "--storage", str(d / "sweeps")]) == 0
    out = capsys.readouterr().out
    raw = pd.concat([pd.read_csv(replicated["sweep_dir"] / "results.csv", dtype={"trial_id": str}),
                     pd.read_csv(replicated["sweep_dir"] / "replicate_1" / "results.csv", dtype={"trial_id": str})])
    report_dir = replicated["sweep_dir"] / "report"
    summary = pd.read_csv(report_dir / "summary.csv")
    for cfg, part in raw.groupby("config_id"):
        row = summary[(summary["group"] == cfg) & (summary["metric"] == "eval/exact_acc")].iloc[0]
        values = part["eval/exact_acc"].to_numpy()
        assert row["n"] == 2 and math.isclose(row["mean"], values.mean())
        assert math.isclose(row["std"], np.std(values, ddof=1), abs_tol=1e-12)
    trials = pd.read_parquet(report_dir / "trials.parquet")
    assert len(trials) == 4 and set(trials["phase"]) == {"search", "replicate_1"}
    steps = pd.read_parquet(report_dir / "steps.parquet")
    evals = set(range(50, 201, 50))  # LONG_TRIAL
    assert set(steps["step"]) == evals and len(steps) == 4 * len(evals)  # one row per evaluation of each trial
    html = (report_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "search 2, replicate_1 2" in out and "Aim: run" in out
    import aim

    repo = aim.Repo.from_path(str(d / "aim"))
    report_runs = [r for r in repo.iter_runs() if r.name == "rep/report"]
    assert len(report_runs) == 1 and report_runs[0].experiment == "rep"


def test_compare_two_configurations(replicated):
    raw = pd.concat([pd.read_csv(replicated["sweep_dir"] / "results.csv", dtype={"trial_id": str}),
                     pd.read_csv(replicated["sweep_dir"] / "replicate_1" / "results.csv", dtype={"trial_id": str})])
    a, b = sorted(raw["config_id"].unique())
    storage = str(replicated["dir"] / "sweeps")
    assert main(["report", f"rep:{a}", f"rep:{b}", "--storage", storage, "--no-aim"]) == 0
    table = pd.read_csv(replicated["sweep_dir"] / "compare" / f"rep_{a}-vs-rep_{b}" / "comparison.csv")
    means = raw.groupby("config_id")["eval/exact_acc"].mean()
    assert math.isclose(table.iloc[0]["diff"], means[b] - means[a], abs_tol=1e-12)
