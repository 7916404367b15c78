"""The paper presets against the public code they reproduce: loss, sequence layout, parameter count
and the keys each paper names. Counts and values come from the public code (docs/METHODS.md gives
file:line at the commits read), never from trm_core: where a count is derived here, it is derived
from the public code's config with its own sizing rule.
"""

import pytest

from trm_core.config import load_config
from trm_core.model import build_model


def find_multiple(a: int, b: int) -> int:
    """The public codes' SwiGLU width rule (TRM/EqR models/layers.py, SIC code/model.py:270-271)."""
    return -(a // -b) * b


def swiglu_params(c_in: int, expansion: float = 4.0) -> int:
    """One SwiGLU: up (c_in -> 2 * hidden) and down (hidden -> c_in), no biases, hidden =
    find_multiple(round(expansion * 2/3 * c_in), 256) (SIC code/model.py:835-868, EqR models/layers.py)."""
    hidden = find_multiple(round(expansion * 2 / 3 * c_in), 256)
    return c_in * 2 * hidden + hidden * c_in


def mixer_model_params(vocab: int, seq: int, head_out: int, head_bias: bool, q_out: int, width: int = 512,
                       layers: int = 2) -> int:
    """Embedding + lm head + halt head + `layers` MLP-Mixer blocks (a token SwiGLU over `seq` positions,
    a channel SwiGLU over `width`; the RMSNorms have no weights in all three codes)."""
    embed = vocab * width
    head = width * head_out + (head_out if head_bias else 0)
    q_head = width * q_out + q_out
    return embed + head + q_head + layers * (swiglu_params(seq) + swiglu_params(width))


def count(preset: str) -> int:
    return build_model(load_config(preset, ["device=cpu"])).n_params()


def test_trm_preset():
    cfg = load_config("sudoku_extreme_trm")
    model = build_model(cfg)
    assert cfg.loss.kind == "stablemax" and cfg.loss.halt_weight == 0.5
    assert (model.seq_len, model.prefix_len, model.halt_register) == (81 + 16, 16, False)
    assert cfg.model.prefix_learnable == "slot0" and cfg.optim.puzzle_emb_lr == 1e-4  # TRM's SignSGD identifier table
    assert model.n_params() == 5_028_866  # the reference TRM instantiated with this recipe
    # 50,000 epochs of 1,000 puzzles at batch 768: total_steps = epochs * groups * examples / batch
    assert cfg.train.steps == 50_000 * 1000 // 768 == 65_104
    assert (cfg.recursion.n_inner, cfg.recursion.n_outer, cfg.recursion.n_supervision) == (6, 3, 16)


@pytest.mark.parametrize("preset", ["sudoku_extreme_sic", "sudoku_extreme_wta"])
def test_sic_presets(preset):
    """jvdillon/sic code/experiment.py Experiment (its x182/x182a runs): softmax CE with label smoothing 0.2
    (experiment.py:271, 801-808), 81 cells after one HALT token and no puzzle prefix (82 positions), a
    12-way head with a bias, a one-output halt head, nH 6 / nL 9, Muon + AdamW, halt weight 0.05."""
    cfg = load_config(preset)
    model = build_model(cfg)
    assert (cfg.loss.kind, cfg.loss.label_smoothing, cfg.loss.halt_weight) == ("softmax", 0.2, 0.05)
    assert (model.seq_len, model.prefix_len, model.halt_register) == (82, 0, True)
    assert model.lm_head.weight.shape[0] == 12 and model.lm_head.bias is not None
    assert model.q_head.weight.shape[0] == 1
    assert (cfg.recursion.n_outer, cfg.recursion.n_inner, cfg.model.swiglu, cfg.optim.name) == (6, 9, "sic", "muon_adamw")
    assert (cfg.optim.ema_decay, cfg.optim.ema_start_step, cfg.optim.grad_clip) == (0.9, 5000, 1.0)
    # SIC's count derived from its config: vocab 12 (values + unknown + halt), MLP-Mixer seq_len 9 * 9 + 1,
    # head c_out 12 with a bias, q_head c_out 1 with a bias; and the number its model printed when
    # instantiated at the commit of its headline logs (4b40796): 4,857,357
    sic = mixer_model_params(vocab=12, seq=82, head_out=12, head_bias=True, q_out=1)
    assert model.n_params() == sic == 4_857_357


def test_wta_preset_keys():
    """SIC's headline (x182a: 96.9 +/- 0.6%): K = 4, copy/all, z_L_random_init + z_L_init_svd, expunge
    0.95, batch 192, 36k steps (code/experiment.py:228-241, 284-285; code/sudoku/x182a.py)."""
    cfg = load_config("sudoku_extreme_wta")
    r = cfg.recursion
    assert (r.chains, r.carry_h, r.carry_l, r.latent_init, r.expunge_cos) == (4, "copy", "all", "svd_aligned", 0.95)
    assert (cfg.train.batch_size, cfg.train.steps, cfg.loss.chain_loss) == (192, 36_000, "wta")
    assert load_config("sudoku_extreme_sic").recursion.chains == 1
    assert (load_config("sudoku_extreme_sic").train.batch_size, load_config("sudoku_extreme_sic").train.steps) == (384, 8000)


def test_eqr_preset():
    """locuslab/EqR config/arch/eqr.yaml + config/train/eqr_sudoku.yaml: TRM's MLP recipe with no puzzle
    prefix (seq_len 81, the halt head on cell 0), random init with H_init_std = L_init_std = 1 (eqr.yaml:28-29),
    lambda 0.95 (our damping 0.05) and noise 0.01, stablemax."""
    cfg = load_config("sudoku_extreme_eqr")
    model = build_model(cfg)
    r = cfg.recursion
    assert cfg.loss.kind == "stablemax"
    assert (model.seq_len, model.prefix_len, model.halt_register, model.n_special) == (81, 0, False, 0)
    assert (r.latent_init, r.init_sigma_h, r.init_sigma_l, r.damping, r.noise_beta) == ("normal", 1.0, 1.0, 0.05, 0.01)
    # pretrain.py:262-270: steps_per_epoch = floor(1000 puzzles / 768) = 1, times 50,000 epochs
    assert cfg.train.steps == 50_000 * max(1000 // 768, 1)
    eqr = mixer_model_params(vocab=11, seq=81, head_out=11, head_bias=False, q_out=2)
    assert model.n_params() == eqr == 4_855_298


def test_cgar_preset():
    cfg = load_config("sudoku_extreme_cgar")
    assert cfg.recursion.depth_schedule == "cgar" and cfg.recursion.cgar_stages == "0:2x1,0.3:4x2,0.6:6x3"
    assert (cfg.loss.step_weighting, cfg.loss.step_weight_lambda, cfg.loss.kind) == ("cgar_paper", 0.7, "stablemax")
    assert count("sudoku_extreme_cgar") == 5_028_866  # TRM's model


def test_maze_preset():
    cfg = load_config("maze_hard_trm")
    model = build_model(cfg)
    assert (cfg.model.token_mixer, cfg.recursion.n_outer, cfg.recursion.n_inner) == ("attention", 3, 4)
    assert (model.seq_len, model.prefix_len) == (900 + 16, 16) and cfg.loss.kind == "stablemax"
    assert model.n_params() == 6_822_914  # the reference TRM's Maze-Hard model
    assert cfg.data.generated_ok is False and cfg.data.augment is True


def test_maze_hard_refuses_generated_mazes(cli_error, tmp_path):
    from trm_core.cli import main

    line = cli_error(main, ["train", "maze_hard_trm", "--set", "device=cpu", "train.steps=1", "--out", str(tmp_path / "run")])
    assert "maze_hard_trm is defined on a public dataset" in line and "data build maze-csv" in line
    assert "data.path is empty" in line


@pytest.mark.parametrize("preset, layout", [("sudoku6_sic", (37, 0, True)), ("sudoku6_wta", (37, 0, True)),
                                            ("sudoku6_eqr", (36, 0, False))])
def test_cpu_method_presets_follow_their_papers_layout(preset, layout):
    cfg = load_config(preset)
    model = build_model(cfg)
    assert (model.seq_len, model.prefix_len, model.halt_register) == layout
    if preset.endswith("wta"):
        assert (cfg.recursion.expunge_cos, cfg.recursion.latent_init) == (0.95, "svd_aligned")
