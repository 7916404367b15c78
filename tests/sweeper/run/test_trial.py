"""A trial resolved once: seed from the repeat index, configuration id, steps and the validated trainer
config; the worker's config and the driver's TrialSetup come from the same resolution."""

from __future__ import annotations

from pathlib import Path

from ray.tune.search.repeater import TRIAL_INDEX as RAY_TRIAL_INDEX
from sweep_helpers import good

from sweeper.run.trial import TRIAL_INDEX, SweepBase
from sweeper.spec import validate
from trm_core.config import to_dict


def _base(tmp_path, **overrides) -> SweepBase:
    raw = good()
    raw["seeds"] = [7, 8, 9]
    raw["base"]["overrides"].update(overrides)
    return SweepBase.from_spec(validate("s.yaml", raw, cwd=tmp_path), embedded=False)


def test_the_repeat_index_is_rays():
    assert TRIAL_INDEX == RAY_TRIAL_INDEX


def test_seed_config_id_steps_and_params(tmp_path):
    base = _base(tmp_path)
    sample = {"optim.lr": 2e-3, "recursion.n_inner": 2, "model.hidden_size": 16}
    seeds = [base.resolve({**sample, TRIAL_INDEX: i}) for i in range(4)]
    assert [s.seed for s in seeds] == [7, 8, 9, 7]  # the index picks the spec's seed, cycling
    assert len({s.config_id for s in seeds}) == 1 and seeds[0].config_id.startswith("cfg-")
    assert seeds[0].params == sample and TRIAL_INDEX not in seeds[0].params
    assert seeds[0].hparams == {**sample, "seed": 7}
    other = base.resolve({**sample, "optim.lr": 3e-3, TRIAL_INDEX: 0})
    assert other.config_id != seeds[0].config_id  # another configuration, another id
    assert seeds[0].steps == 20 and base.resolve({**sample, "train.steps": 50}).steps == 50
    config = seeds[1].config
    assert (config["seed"], config["optim"]["lr"], config["model"]["hidden_size"]) == (8, 2e-3, 16)


def test_the_config_is_validated_with_derived_values(tmp_path):
    base = _base(tmp_path, **{"train.batch_rows": 64})
    one, four = (base.resolve({"optim.lr": 1e-3, "recursion.chains": k}) for k in (1, 4))
    assert one.config["train"]["batch_size"] == 64 and four.config["train"]["batch_size"] == 16


def test_worker_and_driver_resolve_the_same_config(tmp_path):
    base = _base(tmp_path)
    sample = {"optim.lr": 2e-3, "recursion.n_inner": 3, TRIAL_INDEX: 2}
    assert to_dict(base.trainer_config(sample)) == base.resolve(sample).config


def test_paths_are_absolute_and_the_embedded_cache_is_pinned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRM_DATA_CACHE", str(tmp_path / "cache"))
    raw = good()
    raw["base"]["overrides"]["data.path"] = "data/s4"
    spec = validate("s.yaml", raw, cwd=tmp_path)
    embedded = SweepBase.from_spec(spec, embedded=True)
    assert embedded.base["data"]["path"] == str(tmp_path / "data" / "s4")
    assert embedded.base["data"]["cache_dir"] == str(tmp_path / "cache")
    assert SweepBase.from_spec(spec, embedded=False).base["data"]["cache_dir"] == ""  # each node its own cache
    assert Path(embedded.base["data"]["path"]).is_absolute()
