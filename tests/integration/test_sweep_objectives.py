"""Two objectives on real Ray, Optuna and Aim (issue 27): `metric: [eval/exact_acc, cost/train_s]`,
`mode: [max, min]`, run through the CLI on the 4x4 tiny preset (one local Ray per module, 2 CPUs).

The search: a 2 x 2 grid x 2 seeds (8 trials), then `replicate --top 1` adds a third seed to the best
configuration. Checked: Optuna's study (read back from the searcher state Ray Tune saves in the
experiment directory, `tune/searcher-state-*.pkl`: OptunaSearch pickles its attributes, the study among
them) has both directions and was told each objective's mean over the seeds; results.csv has both
columns; the report's Pareto table equals a front computed here from results.csv by brute force from
the definition of dominance. A second, tiny sweep runs the NSGA-II sampler."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from sweep_helpers import good, write_spec

from sweeper.cli import main
from sweeper.report import data as rd
from sweeper.report.pareto import DOMINATED, FRONT, pareto_blocks, pareto_table
from sweeper.report.report import final_trials
from sweeper.run.sweeps import spec_for_resume
from sweeper.run.table import read_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACC, COST = "eval/exact_acc", "cost/train_s"
SPACE = {"model.hidden_size": {"type": "categorical", "choices": [16, 32]},
         "recursion.n_inner": {"type": "categorical", "choices": [1, 2]}}


def _spec(d, name, search, seeds):
    raw = good()
    raw.update(name=name, metric=[ACC, COST], mode=["max", "min"], scheduler="none", seeds=seeds, space=SPACE,
               search=search, storage=str(d / "sweeps"), aim={"repo": str(d / "aim"), "experiment": name},
               failure={"max_retries": 0})
    return write_spec(d / f"{name}.yaml", raw)


def _run(*args):
    out, err = io.StringIO(), io.StringIO()
    t0 = time.time()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue(), time.time() - t0


def _study(sweep_dir):
    """The Optuna study of the search, from the searcher state Ray Tune saved with the experiment."""
    states = sorted((sweep_dir / "tune").glob("searcher-state-*.pkl"))
    assert states, list((sweep_dir / "tune").iterdir())
    with open(states[-1], "rb") as f:
        return pickle.load(f)["_ot_study"]


@pytest.fixture(scope="module")
def swept(ray_cluster, tmp_path_factory):
    d = tmp_path_factory.mktemp("objectives")
    spec = _spec(d, "pareto", {"sampler": "grid", "max_concurrent": 2}, [0, 1])
    run = _run("run", spec)
    storage = str(d / "sweeps")
    replicate = _run("replicate", "pareto", "--top", "1", "--seeds", "0-2", "--storage", storage)
    return {"dir": d, "sweep_dir": d / "sweeps" / "pareto", "storage": storage, "run": run, "replicate": replicate}


def test_the_sweep_records_both_objectives(swept):
    rc, out, err, wall = swept["run"]
    assert rc == 0, (out[-2000:], err[-2000:])
    record = json.loads((swept["sweep_dir"] / "sweep.json").read_text())
    assert record["status"] == "finished" and record["total_trials"] == 8
    assert (record["metric"], record["mode"]) == (ACC, "max")
    assert (record["metrics"], record["modes"]) == ([ACC, COST], ["max", "min"])
    assert f"this sweep has 2 objectives ({ACC} (max), {COST} (min))" in out
    assert "python -m sweeper report pareto" in out
    spec, _ = spec_for_resume(swept["sweep_dir"])  # resume rebuilds the same objectives
    assert (spec.metrics, spec.modes) == ([ACC, COST], ["max", "min"])
    rc, out, _, _ = _run("ls", "--storage", swept["storage"])
    assert rc == 0 and f"{ACC} (max), {COST} (min)" in out


def test_results_have_every_objective_and_the_costs(swept):
    t = read_table(swept["sweep_dir"] / "results.csv")
    assert len(t) == 8 and set(t["status"]) == {"done"}
    params = [c for c in t.columns if c.startswith("param:")]
    assert list(t.columns)[12 + len(params):14 + len(params)] == [ACC, COST]  # the objectives, in order
    assert t[ACC].notna().all() and (t[COST] > 0).all() and (t[COST] <= t["time/elapsed_s"]).all()
    assert (t["cost/gpu_s"] == 0).all() and (t["cost/train_flops"] > 0).all()  # CPU trials hold no GPU
    # the same steps at a larger width and depth cost more FLOPs: the analytic count follows the shape
    flops = t.groupby(["param:model.hidden_size", "param:recursion.n_inner"])["cost/train_flops"].agg(["min", "max"])
    assert (flops["min"] == flops["max"]).all()  # seeds of one configuration: the same count
    assert flops.loc[(16, 1), "max"] < flops.loc[(32, 1), "max"] < flops.loc[(32, 2), "max"]


def test_optuna_was_told_each_objectives_mean_over_the_seeds(swept):
    study = _study(swept["sweep_dir"])
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    done = [tr for tr in study.trials if tr.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 and len(study.best_trials) >= 1  # best_trials: Optuna's own Pareto front
    t = read_table(swept["sweep_dir"] / "results.csv")
    means = t.groupby(["param:model.hidden_size", "param:recursion.n_inner"])[[ACC, COST]].mean()
    for tr in done:
        key = (tr.params["model.hidden_size"], tr.params["recursion.n_inner"])
        assert tr.values == pytest.approx(list(means.loc[key])), key


def test_replicate_ranks_on_the_first_objective_and_adds_a_seed(swept):
    rc, out, err, _ = swept["replicate"]
    assert rc == 0, (out[-2000:], err[-2000:])
    assert f"top 1 configuration(s) by {ACC} (max)" in out
    rep = read_table(swept["sweep_dir"] / "replicate_1" / "results.csv")
    assert len(rep) == 1 and rep["seed"].tolist() == [2] and rep[[ACC, COST]].notna().all(axis=None)


def _independent_front(sweep_dir):
    """From the raw results tables alone: a configuration's value per objective is the mean over its seeds
    trained to the end (a pair trained in two phases counts once, the later); A dominates B when A is at
    least as good in both objectives (accuracy higher, seconds lower) and strictly better in one."""
    tables = [read_table(sweep_dir / "results.csv"), read_table(sweep_dir / "replicate_1" / "results.csv")]
    t = pd.concat(tables, ignore_index=True)
    t = t[(t["status"] == "done") & np.isfinite(t[ACC])].drop_duplicates(["config_id", "seed"], keep="last")
    means = t.groupby("config_id")[[ACC, COST]].mean()
    seeds = t.groupby("config_id")["seed"].count()

    def beats(a, b):
        return (a[ACC] >= b[ACC] and a[COST] <= b[COST]) and (a[ACC] > b[ACC] or a[COST] < b[COST])

    dominated = {g for g in means.index if any(beats(means.loc[h], means.loc[g]) for h in means.index if h != g)}
    return means, seeds, set(means.index) - dominated, dominated


def test_the_reports_pareto_table_equals_a_brute_force_front(swept):
    means, seeds, front, dominated = _independent_front(swept["sweep_dir"])
    assert front and len(front) + len(dominated) == 4
    sweep = rd.load("pareto", swept["storage"])
    final, _ = final_trials(sweep)
    table = pareto_table(sweep, final, seed=0).set_index("group")
    assert {g for g in table.index if table.loc[g, "pareto"] == FRONT} == front
    assert {g for g in table.index if table.loc[g, "pareto"] == DOMINATED} == dominated
    for g in means.index:
        assert table.loc[g, f"{ACC}:mean"] == pytest.approx(means.loc[g, ACC])
        assert table.loc[g, f"{COST}:mean"] == pytest.approx(means.loc[g, COST])
        assert table.loc[g, f"{ACC}:n"] == seeds[g]
    assert sorted(seeds) == [2, 2, 2, 3]  # the replicated seed is pooled into its configuration
    for g in dominated:  # the named dominator is on the front and beats it in the raw means
        by = table.loc[g, "dominated_by"]
        assert by in front
        assert means.loc[by, ACC] >= means.loc[g, ACC] and means.loc[by, COST] <= means.loc[g, COST]
    blocks, images = pareto_blocks(sweep, final, 0, swept["dir"] / "plots")
    assert images["pareto"][1].read_bytes()[:4] == b"\x89PNG"


def test_the_report_command_writes_the_pareto_table(swept):
    """`sweeper report NAME` (make_report) with the Pareto section wired in: pareto.csv, its plot and the
    section in report.md agree with the brute-force front."""
    _, _, front, dominated = _independent_front(swept["sweep_dir"])
    rc, out, err, _ = _run("report", "pareto", "--storage", swept["storage"], "--no-aim")
    assert rc == 0, (out[-2000:], err[-2000:])
    report = swept["sweep_dir"] / "report"
    exported = pd.read_csv(report / "pareto.csv")
    assert set(exported.loc[exported["pareto"] == FRONT, "group"]) == front
    assert set(exported.loc[exported["pareto"] == DOMINATED, "group"]) == dominated
    assert (report / "plots" / "pareto.png").exists() and "Pareto front over 2 objectives" in (report / "report.md").read_text()


@pytest.fixture(scope="module")
def nsga(ray_cluster, tmp_path_factory):
    d = tmp_path_factory.mktemp("nsga2")
    spec = _spec(d, "nsga", {"sampler": "nsga2", "seed": 0, "num_samples": 4, "population_size": 2,
                             "max_concurrent": 2}, [0])
    return {"run": _run("run", spec), "sweep_dir": d / "sweeps" / "nsga"}


def test_nsga2_runs_a_two_objective_sweep(nsga):
    rc, out, err, _ = nsga["run"]
    assert rc == 0, (out[-2000:], err[-2000:])
    study = _study(nsga["sweep_dir"])
    assert isinstance(study.sampler, optuna.samplers.NSGAIISampler) and study.sampler._population_size == 2
    assert len(study.directions) == 2
    done = [tr for tr in study.trials if tr.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4
    generations = [tr.system_attrs[study.sampler._get_generation_key()] for tr in done]
    assert generations[0] == 0 and max(generations) >= 1, generations  # a bred generation followed the first
    t = read_table(nsga["sweep_dir"] / "results.csv")
    assert len(t) == 4 and t[[ACC, COST]].notna().all(axis=None)
