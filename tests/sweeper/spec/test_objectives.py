"""Several objectives in a sweep spec (issue 27): `metric: [eval/exact_acc, cost/train_s]` with
`mode: [max, min]`; every bad input is one line (exit 2 through the CLI); the searcher's study has
one direction per objective and is told each objective's mean over the seeds; NSGA-II is seeded."""

from __future__ import annotations

import math
import pickle

import optuna
import pytest
from ray import tune
from sweep_helpers import good, write_spec

from sweeper.cli import main
from sweeper.errors import SpecError
from sweeper.run.table import trial_row
from sweeper.run.trial import SweepBase, TrialSetup
from sweeper.spec import validate
from sweeper.spec.optuna_space import DefineByRun, SeedRepeater, make_sampler, make_searcher, quiet_optuna

ACC, COST = "eval/exact_acc", "cost/train_s"


def two(**update):
    """good() with two objectives and no scheduler (ASHA is refused with several objectives)."""
    raw = good()
    raw.update({"metric": [ACC, COST], "mode": ["max", "min"], "scheduler": "none", **update})
    return raw


def test_two_objectives_resolve_and_the_first_stays_the_metric(tmp_path):
    spec = validate("s.yaml", two(), cwd=tmp_path)
    assert (spec.metrics, spec.modes, spec.metric, spec.mode) == ([ACC, COST], ["max", "min"], ACC, "max")
    assert spec.objectives_text == f"{ACC} (max), {COST} (min)"
    one = validate("s.yaml", good(), cwd=tmp_path)  # a single string works exactly as before
    assert (one.metrics, one.modes, one.metric, one.objectives_text) == ([ACC], ["max"], ACC, f"{ACC} (max)")
    assert SweepBase.from_spec(spec, embedded=True).objectives == (ACC, COST)
    for sampler in ("random", "grid"):
        raw = two()
        raw["space"] = {"model.hidden_size": {"type": "categorical", "choices": [16, 32]}}
        raw["search"] = {"sampler": sampler, "seed": 0, "num_samples": 2}
        assert validate("s.yaml", raw, cwd=tmp_path).metrics == [ACC, COST]


BAD = [
    # (what, spec mapping, key path, words the one line must hold)
    ("objective never reported", two(metric=[ACC, "cost/train_seconds"]), "metric[1]", "did you mean 'cost/train_s'"),
    ("mode list too short", two(mode=["max"]), "mode", "metric has 2 keys, mode has 1"),
    ("mode list too long", two(mode=["max", "min", "min"]), "mode", "metric has 2 keys, mode has 3"),
    ("asha with two objectives", two(scheduler={"type": "asha", "grace_period": 10}), "scheduler.type",
     "stops trials early, so their cost objectives would measure a shortened run"),
    ("duplicate objective", two(metric=[ACC, ACC]), "metric[1]", "names eval/exact_acc again (it is metric[0])"),
    ("mode list with one metric", {**good(), "mode": ["max", "min"]}, "mode", "metric is one key (eval/exact_acc)"),
    ("metric list with one mode", two(mode="max"), "mode", "must be a list of 2 modes"),
    ("metric list without a mode", {k: v for k, v in two().items() if k != "mode"}, "mode",
     "is missing: with 2 objectives in metric it must be a list of 2 modes"),
    ("a mode that is not max or min", two(mode=["max", "minimize"]), "mode[1]", "must be one of max, min"),
    ("empty metric list", two(metric=[]), "metric", "non-empty list"),
    ("eval_tts objective without final_eval", two(metric=[ACC, "eval_tts/majority/exact_acc"]), "metric[1]",
     "only with a final_eval section"),
    ("population size without nsga2", two(search={"sampler": "tpe", "population_size": 4}), "search.population_size",
     "only applies to sampler nsga2"),
    ("population of one", two(search={"sampler": "nsga2", "population_size": 1}), "search.population_size",
     "integer >= 2"),
]


@pytest.mark.parametrize("what,raw,path,words", BAD, ids=[b[0] for b in BAD])
def test_bad_objectives_are_one_precise_error(what, raw, path, words, tmp_path):
    with pytest.raises(SpecError) as info:
        validate("bad.yaml", raw, cwd=tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"bad.yaml: {path}: ") and words in msg and "\n" not in msg, msg


@pytest.mark.parametrize("what,raw,path,words", BAD[:5], ids=[b[0] for b in BAD[:5]])
def test_the_cli_refuses_them_with_one_line_and_exit_2(what, raw, path, words, tmp_path, cli_error):
    spec = write_spec(tmp_path / "bad.yaml", {**raw, "storage": str(tmp_path / "sweeps")})
    line = cli_error(main, ["run", spec, "--dry-run"])
    assert f"bad.yaml: {path}: " in line and words in line
    assert not (tmp_path / "sweeps").exists()  # refused before the sweep directory is claimed


def test_an_eval_tts_objective_keeps_its_rules(tmp_path):
    fe = {"depth": 2, "select": ["majority"]}
    ok = validate("s.yaml", two(metric=[ACC, "eval_tts/majority/exact_acc"], final_eval=fe), cwd=tmp_path)
    assert ok.metrics[1] == "eval_tts/majority/exact_acc"
    with pytest.raises(SpecError, match=r"metric\[1\]: names rule 'prob_avg', but final_eval.select is majority"):
        validate("s.yaml", two(metric=[ACC, "eval_tts/prob_avg/exact_acc"], final_eval=fe), cwd=tmp_path)


def test_searcher_study_has_one_direction_per_objective(tmp_path):
    rep = make_searcher(validate("s.yaml", two(), cwd=tmp_path))
    assert rep.searcher.metric == [ACC, COST] and rep.searcher.mode == ["max", "min"]
    assert rep.searcher._ot_study.directions == [optuna.study.StudyDirection.MAXIMIZE,
                                                 optuna.study.StudyDirection.MINIMIZE]
    single = make_searcher(validate("s.yaml", good(), cwd=tmp_path))
    assert single.searcher.metric == ACC and single.searcher._ot_study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_seed_repeater_averages_each_objective_and_fails_a_seed_without_one():
    from ray.tune.search.optuna import OptunaSearch  # Ray's searcher, as make_searcher builds it

    searcher = OptunaSearch(space={"x": tune.uniform(0, 1)}, metric=[ACC, COST], mode=["max", "min"],
                            sampler=optuna.samplers.RandomSampler(seed=0))
    rep = SeedRepeater(searcher, repeat=2, set_index=True)
    for tid in "abcdef":
        assert rep.suggest(tid) is not None
    rep.on_trial_complete("a", {ACC: 0.5, COST: 10.0})
    rep.on_trial_complete("b", {ACC: 0.7, COST: 30.0})
    rep.on_trial_complete("c", {ACC: 0.9, COST: 1.0})
    rep.on_trial_complete("d", {ACC: 0.9, COST: math.nan})  # a seed with no finite cost
    rep.on_trial_complete("e", {ACC: 0.9, COST: 2.0})
    rep.on_trial_complete("f", {"step": 10, "trial/diverged": "train/loss is nan"})
    trials = searcher._ot_study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL"]
    assert trials[0].values == pytest.approx([0.6, 20.0])  # each objective's own mean over the two seeds


def _first_suggestions(spec, n=6):
    quiet_optuna()
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler(spec))
    space, out = DefineByRun(spec.params), []
    for i in range(n):
        trial = study.ask()
        space(trial)
        out.append(dict(trial.params))
        study.tell(trial, [float(i % 3), float(i % 2)])
    return out


def test_nsga2_is_optunas_seeded_sampler_with_a_population(tmp_path):
    raw = two(search={"sampler": "nsga2", "seed": 3, "num_samples": 8})
    spec = validate("s.yaml", raw, cwd=tmp_path)
    sampler = make_sampler(spec)
    assert isinstance(sampler, optuna.samplers.NSGAIISampler)
    assert spec.population_size == 4 and sampler._population_size == 4  # half of 8, so two generations run
    assert spec.sampler_text == "nsga2 (population 4, seed 3)"
    assert _first_suggestions(spec) == _first_suggestions(spec)  # same seed, same suggestions
    raw["search"]["seed"] = 4
    assert _first_suggestions(validate("s.yaml", raw, cwd=tmp_path)) != _first_suggestions(spec)
    raw["search"].update(population_size=6, num_samples=200)
    assert validate("s.yaml", raw, cwd=tmp_path).population_size == 6
    del raw["search"]["population_size"]
    assert validate("s.yaml", raw, cwd=tmp_path).population_size == 50  # Optuna's default, for large sweeps


def test_results_row_puts_every_objective_first():
    from types import SimpleNamespace

    setup = TrialSetup(config_id="cfg-1", seed=0, params={"optim.lr": 1e-3}, steps=20, config={})
    trial = SimpleNamespace(trial_id="t1", status="TERMINATED",
                            last_result={"step": 20, ACC: 0.5, "train/loss": 0.1, COST: 3.0, "cost/gpu_s": 0.0})
    row = trial_row(trial, setup, [ACC, COST], {"started_at": 1.0, "ended_at": 2.0}, None)
    assert list(row)[12:] == ["param:optim.lr", ACC, COST, "cost/gpu_s", "train/loss"]


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "nsga2"])
def test_every_samplers_searcher_survives_pickling_and_goes_on_alike(sampler, tmp_path):
    """Ray's Tuner pickles the search algorithm when it starts, and a sweep saves the searcher for
    `resume`: a sampler that cannot be pickled stops the sweep before its first trial (Optuna's NSGA-II
    holds a thread lock). A copy made after 3 trials suggests what the original suggests next."""
    from ray import cloudpickle  # how Ray pickles the Tuner's search algorithm

    raw = two(search={"sampler": sampler, "seed": 0, "num_samples": 4})
    raw["space"] = {"model.hidden_size": {"type": "categorical", "choices": [16, 32]},
                    "optim.lr": {"type": "float", "low": 1e-3, "high": 3e-3, "step": 1e-3}}
    rep = make_searcher(validate("s.yaml", raw, cwd=tmp_path))
    rep = cloudpickle.loads(cloudpickle.dumps(rep))
    for i in range(3):
        rep.suggest(f"t{i}")
        rep.on_trial_complete(f"t{i}", {ACC: 0.1 * i, COST: 10.0 - i})
    copy = pickle.loads(pickle.dumps(rep))
    assert copy.suggest("t3") == rep.suggest("t3")
