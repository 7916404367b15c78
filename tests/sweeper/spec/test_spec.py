"""Spec validation: the good spec resolves; every bad spec is one precise SpecError (exit 2 via the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import good, write_spec

from sweeper.errors import SpecError
from sweeper.run.preflight import data_problems
from sweeper.spec import apply_sets, load_spec, validate
from sweeper.spec.resources import Node, check_fits

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted(str(p) for p in (ROOT / "search_spaces").rglob("*.yaml"))


def test_good_spec_resolves(tmp_path):
    spec = validate("s.yaml", good(), cwd=tmp_path)
    assert spec.total_trials == 8
    assert spec.base_cfg.train.steps == 20 and spec.base_cfg.model.hidden_size == 32
    assert spec.max_t == 20 and spec.grace_period == 10
    assert spec.storage == (tmp_path / "runs/sweeps").resolve() and spec.storage.is_absolute()
    assert list(spec.searched) == ["optim.lr", "recursion.n_inner", "model.hidden_size"]


def test_set_targets_spec_keys_and_trainer_keys(tmp_path):
    raw = apply_sets("s.yaml", good(), ["search.num_samples=2", "train.steps=30", "optim.lr=3e-3", "seeds=[5]"])
    spec = validate("s.yaml", raw, cwd=tmp_path)
    assert spec.num_samples == 2 and spec.seeds == [5]
    assert spec.base_cfg.train.steps == 30
    assert spec.params["optim.lr"].kind == "constant" and spec.params["optim.lr"].value == 3e-3


def test_conditional_entries_parse(tmp_path):
    raw = good()
    raw["space"]["optim.name"] = {"type": "categorical", "choices": ["adamw", "adam_atan2"]}
    raw["space"]["optim.weight_decay"] = {"type": "float", "low": 0.01, "high": 1.0, "log": True, "when": {"optim.name": "adamw"}}
    spec = validate("s.yaml", raw, cwd=tmp_path)
    assert spec.params["optim.weight_decay"].when == {"optim.name": ["adamw"]}


def _with(keys: tuple, value):
    """good() with one nested spec entry set, e.g. _with(("space", "optim.lr"), {...})."""
    raw = good()
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return raw


DELETE = object()

BAD = [
    # (what is wrong, spec mapping, key path in the message, words the message must contain)
    ("unknown top key", {**good(), "serach": {}}, "serach", "did you mean 'search'"),
    ("unknown search key", _with(("search", "num_sample"), 3), "search.num_sample", "did you mean 'num_samples'"),
    ("unknown config key in space", _with(("space", "optim.lrr"), {"type": "float", "low": 1e-4, "high": 1e-2}), "space[optim.lrr]", "did you mean 'optim.lr'"),
    ("nested space key", _with(("space", "optim"), {"lr": 1}), "space[optim]", "dotted"),
    ("low > high", _with(("space", "optim.lr"), {"type": "float", "low": 1e-2, "high": 1e-4}), "space[optim.lr]", "low must be <= high"),
    ("log with low <= 0", _with(("space", "optim.lr"), {"type": "float", "low": 0.0, "high": 1e-2, "log": True}), "space[optim.lr].low", "must be > 0 when log is true"),
    ("log with step", _with(("space", "optim.lr"), {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "step": 1e-4}), "space[optim.lr].step", "cannot be combined with log"),
    ("categorical without choices", _with(("space", "model.hidden_size"), {"type": "categorical"}), "space[model.hidden_size].choices", "non-empty list"),
    ("float on an int field", _with(("space", "model.hidden_size"), {"type": "float", "low": 16, "high": 64}), "space[model.hidden_size].type", "does not fit"),
    ("choice of the wrong type", _with(("space", "model.hidden_size"), {"type": "categorical", "choices": [32, "big"]}), "space[model.hidden_size].choices[1]", "must fit config field"),
    ("unknown entry type", _with(("space", "optim.lr"), {"type": "loguniform", "low": 1e-4, "high": 1e-2}), "space[optim.lr].type", "must be one of"),
    ("list as a constant", _with(("space", "model.hidden_size"), [16, 32]), "space[model.hidden_size]", "categorical"),
    ("when on a later key", _with(("space", "optim.lr"), {"type": "float", "low": 1e-4, "high": 1e-2, "when": {"model.hidden_size": 16}}), "space[optim.lr].when.model.hidden_size", "above this one"),
    ("when value not a choice", _with(("space", "optim.weight_decay"), {"type": "float", "low": 0.1, "high": 1, "when": {"model.hidden_size": 99}}), "space[optim.weight_decay].when.model.hidden_size", "must be among"),
    ("value failing the trainer", _with(("space", "optim.beta1"), {"type": "float", "low": 0.5, "high": 1.5}), "space[optim.beta1].high", "trainer"),
    ("unknown registry name", _with(("space", "optim.name"), {"type": "categorical", "choices": ["adamw", "adamx"]}), "space[optim.name].choices", "optim.name"),
    ("unknown preset", _with(("base", "preset"), "sudoku4_tiy"), "base.preset", "did you mean 'sudoku4_tiny'"),
    ("bad base override", _with(("base", "overrides"), {"train.stepz": 3}), "base.overrides", "did you mean 'train.steps'"),
    ("wrong mode", {**good(), "mode": "maximize"}, "mode", "must be one of max, min"),
    ("metric typo", {**good(), "metric": "eval/exact_ac"}, "metric", "did you mean 'eval/exact_acc'"),
    ("unknown sampler", _with(("search", "sampler"), "tpee"), "search.sampler", "did you mean 'tpe'"),
    ("zero samples", _with(("search", "num_samples"), 0), "search.num_samples", "integer >= 1"),
    ("grid with a log float", _with(("search", "sampler"), "grid"), "space[optim.lr].step", "needs a step"),
    ("grace period past max_t", _with(("scheduler", "grace_period"), 50), "scheduler.grace_period", "must be < max_t=20"),
    ("reduction factor 1", _with(("scheduler", "reduction_factor"), 1), "scheduler.reduction_factor", "> 1"),
    ("asha key without asha", {**good(), "scheduler": {"type": "none", "grace_period": 3}}, "scheduler.grace_period", "only applies"),
    ("gpu 1.5", _with(("resources", "gpu"), 1.5), "resources.gpu", "whole number"),
    ("negative cpu", _with(("resources", "cpu"), -1), "resources.cpu", "> 0"),
    ("repeated seeds", {**good(), "seeds": [1, 1]}, "seeds", "must not repeat"),
    ("string seed", {**good(), "seeds": ["a"]}, "seeds[0]", "integer"),
    ("negative retries", _with(("failure", "max_retries"), -1), "failure.max_retries", "integer >= 0"),
    ("point outside range", _with(("search", "points_to_evaluate"), [{"optim.lr": 5.0}]), "search.points_to_evaluate[0].optim.lr", "must lie in"),
    ("point on unknown key", _with(("search", "points_to_evaluate"), [{"optim.lrr": 1e-3}]), "search.points_to_evaluate[0].optim.lrr", "did you mean"),
    ("nothing searched", {**good(), "space": {"optim.lr": 1e-3}}, "space", "at least one"),
    ("missing base", {k: v for k, v in good().items() if k != "base"}, "base", "is required"),
    ("bad name", {**good(), "name": "my sweep"}, "name", "letters, digits"),
]


@pytest.mark.parametrize("what,raw,path,words", BAD, ids=[b[0] for b in BAD])
def test_bad_spec_is_one_precise_error(what, raw, path, words, tmp_path):
    with pytest.raises(SpecError) as info:
        validate("bad.yaml", raw, cwd=tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"bad.yaml: {path}: "), msg
    assert words in msg, msg
    assert "\n" not in msg


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(str(tmp_path / "nope.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="broken.yaml.*not valid YAML"):
        load_spec(str(broken))


def test_base_config_file_is_relative_to_the_spec(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "trainer.yaml").write_text("preset: sudoku4_tiny\ntrain:\n  steps: 42\n")
    raw = good()
    raw["base"] = {"config": "trainer.yaml"}
    spec = load_spec(write_spec(tmp_path / "sub" / "s.yaml", raw), cwd=tmp_path)
    assert spec.base_cfg.train.steps == 42


LAPTOP = [Node(cpu=2, gpu=0)]
"""The README's machine class: 2 cores, no GPU."""


@pytest.mark.parametrize("path", SHIPPED, ids=[str(Path(p).relative_to(ROOT / "search_spaces")) for p in SHIPPED])
def test_shipped_specs_work_with_the_readmes_commands(path, monkeypatch):
    """What validation leaves open and the README relies on: a sweep is named after its file (`sweeper
    resume sudoku6`, `report NAME`), writes to runs/sweeps and runs/aim with its name as the Aim
    experiment; a CPU spec runs on a 2-core laptop from generated data; a GPU spec names a CPU
    counterpart that does, and that optimises the same metric."""
    monkeypatch.chdir(ROOT)  # cpu_variant is a path from the working directory
    spec = load_spec(path, cwd=ROOT)
    assert spec.name == Path(path).stem and spec.aim_experiment == spec.name
    assert (spec.storage, spec.aim_repo) == ((ROOT / "runs/sweeps").resolve(), (ROOT / "runs/aim").resolve())
    cpu = spec if spec.gpu == 0 else load_spec(spec.cpu_variant or "(a GPU spec needs cpu_variant:)", cwd=ROOT)
    assert cpu.gpu == 0 and cpu.cpu_variant is None and cpu.metric == spec.metric, cpu.file
    check_fits(cpu, LAPTOP)
    assert data_problems(cpu) == []


def test_shipped_specs_cover_the_issue():
    names = {Path(p).name for p in SHIPPED}
    assert {"quickstart.yaml", "sudoku6.yaml", "baseline.yaml"} <= names
    quick = load_spec([p for p in SHIPPED if p.endswith("quickstart.yaml")][0])
    assert quick.total_trials >= 8 and quick.gpu == 0 and quick.time_budget_s <= 600
    six = load_spec([p for p in SHIPPED if p.endswith("sudoku6.yaml")][0])
    assert len(six.seeds) == 4 and six.gpu == 0
    assert {"optim.lr", "model.hidden_size", "recursion.n_inner", "recursion.n_outer",
            "recursion.n_supervision", "train.batch_size"} <= set(six.searched)
    base = load_spec([p for p in SHIPPED if p.endswith("baseline.yaml")][0])
    assert base.gpu == 0.5 and base.base_cfg.train.batch_size == 512  # sized by benchmarks/memory_per_row.py
    wta = load_spec([p for p in SHIPPED if p.endswith("/wta.yaml")][0])
    assert wta.gpu == 0.5 and wta.params["recursion.chains"].choices == [1, 2, 4, 8] and len(wta.seeds) == 4
    assert {"recursion.n_outer", "recursion.n_inner", "optim.muon_lr", "optim.lr", "recursion.init_sigma_l",
            "recursion.state_noise_l"} <= set(wta.searched)
