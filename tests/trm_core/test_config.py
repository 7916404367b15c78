"""The config tree: presets, precedence, unknown keys, wrong types, derived-value checks."""

import pytest

from trm_core.config import (PRESETS, TRMConfig, field_types, from_dict, get_value, load_config, set_value,
                             to_dict, to_flat_dict, validate)
from trm_core.errors import ConfigError
from trm_core.names import check_names
from trm_core.model import build_model


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_load_and_validate(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert validate(cfg) is cfg


@pytest.mark.parametrize("preset, expected", [("sudoku_extreme_trm", 5_028_866), ("maze_hard_trm", 6_822_914)])
def test_paper_recipe_parameter_count_matches_the_reference(preset, expected):
    # The reference TRM's own count (sum of its parameters(), its puzzle embedding being a buffer),
    # read off the public code instantiated with the same recipe (Sudoku: MLP mixer, vocab 11,
    # 81 cells + 16 prefix slots; Maze: attention with RoPE, vocab 6, 900 cells + 16 slots).
    assert build_model(load_config(preset)).n_params() == expected


def test_paper_recipe_values():
    cfg = load_config("sudoku_extreme_trm")
    assert (cfg.model.hidden_size, cfg.model.n_layers, cfg.model.token_mixer) == (512, 2, "mlp")
    assert (cfg.recursion.n_inner, cfg.recursion.n_outer, cfg.recursion.n_supervision) == (6, 3, 16)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.ema_decay) == ("adam_atan2", 1e-4, 1.0, 0.999)
    assert cfg.train.batch_size == 768


def test_precedence_set_over_yaml_over_preset(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("preset: sudoku4_tiny\noptim:\n  lr: 0.002\ntrain.batch_size: 32\n")
    cfg = load_config(str(f), ["optim.lr=3e-4"])
    assert cfg.optim.lr == 3e-4  # --set wins
    assert cfg.train.batch_size == 32  # YAML over the preset
    assert cfg.model.hidden_size == PRESETS["sudoku4_tiny"]["model.hidden_size"]  # preset over defaults


def test_unknown_key_says_did_you_mean(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr'.*did you mean 'optim.lr'"):
        load_config("sudoku4_tiny", ["optim.lrr=1"])
    f = tmp_path / "bad.yaml"
    f.write_text("model:\n  hiden_size: 64\n")
    with pytest.raises(ConfigError, match="did you mean 'model.hidden_size'"):
        load_config(str(f))


def test_wrong_type_is_rejected():
    with pytest.raises(ConfigError, match="train.steps must be int"):
        load_config("sudoku4_tiny", ["train.steps=abc"])
    with pytest.raises(ConfigError, match="train.compile must be bool"):
        load_config("sudoku4_tiny", ["train.compile=3"])


def test_unknown_preset():
    with pytest.raises(ConfigError, match="did you mean 'sudoku4_tiny'"):
        load_config("sudoku4_tiny_")


@pytest.mark.parametrize("override, message", [
    ("recursion.n_supervision=0", "recursion.n_supervision > 0 must hold, but got"),
    ("optim.lr=-1", "optim.lr > 0 must hold"),
    ("optim.beta2=1.5", "0 <= optim.beta2 <= 1 must hold"),
])
def test_validate_derived_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("sudoku4_tiny", [override])


@pytest.mark.parametrize("override, message", [
    ("loss.kind=sparsemax", "loss.kind must name an output distribution (softmax, stablemax), but got 'sparsemax'"),
    ("recursion.carry_l=top2", "recursion.carry_l must name a carry policy (all, copy, top1), but got 'top2'"),
    ("recursion.solver=anderson", "recursion.solver must name a z_L solver (fixed_point, unroll), but got 'anderson'"),
    ("loss.chain_loss=min", "loss.chain_loss must name a chain reduction (mean, wta), but got 'min'"),
    ("recursion.latent_init=svd", "recursion.latent_init must name a latent initialiser"),
])
def test_registry_names_are_checked_from_the_registries(override, message):
    """A registry-named key is refused with the registry's own choices: a new entry needs no check edited."""
    cfg = load_config("sudoku4_tiny", [override])  # ranges and relations pass; the name is the registry's to judge
    with pytest.raises(ConfigError) as info:
        check_names(cfg)
    assert str(info.value).startswith(message), str(info.value)


def test_a_near_miss_registry_name_gets_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'top1'"):
        check_names(load_config("sudoku4_tiny", ["recursion.carry_l=top2"]))


def test_heads_must_divide_hidden():
    with pytest.raises(ConfigError, match=r"model.hidden_size % model.n_heads == 0 must hold, but got 128 % 3"):
        load_config("maze_unique", ["model.n_heads=3"])


def test_round_trip_and_field_types():
    cfg = load_config("sudoku6_small", ["optim.lr=5e-4"])
    assert from_dict(to_dict(cfg)) == cfg
    assert from_dict(to_flat_dict(cfg)) == cfg
    types = field_types()
    assert types["optim.lr"] is float and types["train.compile"] is bool
    set_value(cfg, "train.steps", 7)
    assert get_value(cfg, "train.steps") == 7
    assert TRMConfig() == from_dict({})


def test_keys_command_documents_every_method_key(capsys):
    from trm_core.cli import main
    from trm_core.keys import key_docs

    docs = key_docs()
    assert set(docs) == set(field_types())
    method_keys = [k for k in docs if k.startswith(("recursion.", "loss.")) or k in (
        "model.swiglu", "model.halt_register", "model.prefix_learnable", "optim.muon_lr", "optim.ema_start_step",
        "optim.puzzle_emb_lr", "train.precision", "train.checkpoint_carry", "train.deterministic", "data.sampling",
        "data.hint_k", "train.final_eval")]
    undocumented = [k for k in method_keys if not docs[k]]
    assert not undocumented, undocumented
    main(["keys", "recursion.chains", "--preset", "sudoku6_wta"])
    out = capsys.readouterr().out
    assert out.startswith("recursion.chains") and " 4" in out.splitlines()[0] and "SIC" in out


def test_batch_rows_derives_batch_size_from_chains():
    cfg = load_config("sudoku6_small", ["train.batch_rows=256", "recursion.chains=4"])
    assert cfg.train.batch_size == 64
    cfg.recursion.chains = 8
    assert validate(cfg).train.batch_size == 32  # re-derived when a trial changes K
    with pytest.raises(ConfigError, match="train.batch_rows must be 0 .* or >= recursion.chains"):
        load_config("sudoku6_small", ["train.batch_rows=2", "recursion.chains=4"])
