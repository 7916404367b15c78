"""The define-by-run translation against real Optuna studies (no Ray): conditions, types, samplers."""

from __future__ import annotations

import optuna
import pytest
from ray import tune
from sweep_helpers import good

from sweeper.spec.optuna_space import DefineByRun, make_sampler, quiet_optuna
from sweeper.spec import validate


def _conditional(tmp_path, sampler="random"):
    raw = good()
    raw["space"] = {
        "optim.name": {"type": "categorical", "choices": ["adamw", "adam_atan2"]},
        "optim.weight_decay": {"type": "float", "low": 0.01, "high": 1.0, "log": True, "when": {"optim.name": "adamw"}},
        "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "recursion.n_inner": {"type": "int", "low": 1, "high": 4, "step": 1},
        "optim.ema_decay": {"type": "constant", "value": 0.9, "when": {"optim.name": "adam_atan2"}},
    }
    raw["search"]["sampler"] = sampler
    return validate("s.yaml", raw, cwd=tmp_path)


def _run(spec, n):
    quiet_optuna()
    space = DefineByRun(spec.params)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec))
    configs = []
    for i in range(n):
        trial = study.ask()
        constants = space(trial)
        configs.append({**trial.params, **constants})
        study.tell(trial, float(i % 3))
    return configs


def test_conditional_entries_follow_their_condition(tmp_path):
    for sampler in ("random", "tpe"):
        configs = _run(_conditional(tmp_path, sampler), 30)
        assert {c["optim.name"] for c in configs} == {"adamw", "adam_atan2"}
        for c in configs:
            assert ("optim.weight_decay" in c) == (c["optim.name"] == "adamw")
            assert ("optim.ema_decay" in c) == (c["optim.name"] == "adam_atan2")
            assert 1e-4 <= c["optim.lr"] <= 1e-2 and isinstance(c["recursion.n_inner"], int)


def test_tpe_is_seeded_and_multivariate(tmp_path):
    spec = _conditional(tmp_path, "tpe")
    sampler = make_sampler(spec)
    assert isinstance(sampler, optuna.samplers.TPESampler) and sampler._multivariate and sampler._group
    assert _run(spec, 15) == _run(spec, 15)  # same seed, same suggestions


def test_grid_enumerates_every_point(tmp_path):
    raw = good()
    raw["space"] = {"model.hidden_size": {"type": "categorical", "choices": [16, 32]},
                    "recursion.n_inner": {"type": "int", "low": 1, "high": 3},
                    "optim.lr": {"type": "float", "low": 1e-3, "high": 3e-3, "step": 1e-3}}
    raw["search"] = {"sampler": "grid"}
    spec = validate("s.yaml", raw, cwd=tmp_path)
    assert spec.num_samples == 2 * 3 * 3
    configs = _run(spec, spec.num_samples)
    points = {(c["model.hidden_size"], c["recursion.n_inner"], round(c["optim.lr"], 6)) for c in configs}
    assert len(points) == 18


def test_seed_repeater_tells_optuna_failed_when_a_seed_has_no_value():
    """A configuration whose seed diverged (no metric) or failed is FAILED in Optuna, not the mean of
    the other seeds; finite seeds give their mean."""
    from ray.tune.search.optuna import OptunaSearch

    from sweeper.spec.optuna_space import SeedRepeater

    searcher = OptunaSearch(space={"x": tune.uniform(0, 1)}, metric="m", mode="max",
                            sampler=optuna.samplers.RandomSampler(seed=0))
    rep = SeedRepeater(searcher, repeat=2, set_index=True)
    for tid in ("a", "b", "c", "d"):
        assert rep.suggest(tid) is not None
    rep.on_trial_complete("a", {"m": 0.5})
    rep.on_trial_complete("b", {"m": 0.7})
    rep.on_trial_complete("c", {"m": 0.9})
    rep.on_trial_complete("d", {"step": 10, "trial/diverged": "train/loss is nan"})
    trials = searcher._ot_study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    assert trials[0].value == pytest.approx(0.6)
