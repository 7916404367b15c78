"""The TRM network: shapes, initialisation, the one-loop grad switch, registries, carry, variants."""

import math

import pytest
import torch

from trm_core.config import load_config
from trm_core.errors import ConfigError
from trm_core.model import LATENT_INITS, Carry, Dynamics, build_model
from trm_core.model.layers import swiglu_width


def tiny(mixer="mlp", **over):
    sets = [f"model.token_mixer={mixer}", "model.hidden_size=32", "model.n_heads=4", "model.prefix_len=2"]
    cfg = load_config("sudoku4_tiny", sets + [f"{k}={v}" for k, v in over.items()])
    torch.manual_seed(0)
    return cfg, build_model(cfg)


def test_swiglu_width_matches_trm_rounding():
    assert swiglu_width(512, 4.0) == 1536
    assert swiglu_width(97, 4.0) == 512  # token mixer of the 81 + 16 sequence
    assert swiglu_width(81, 4.0) == 256


@pytest.mark.parametrize("mixer", ["mlp", "attention"])
def test_step_shapes_and_detached_carry(mixer):
    cfg, model = tiny(mixer)
    carry = model.init_carry(3)
    assert carry.z_h.shape == (3, 16 + 2, 32)
    x = torch.randint(1, 6, (3, 16))
    out = model(carry, x, n_inner=2, n_outer=2)
    new, logits, q_halt = out.carry, out.logits, out.q_halt
    assert out.solver_stats is None
    assert logits.shape == (3, 16, 6) and q_halt.shape == (3,)
    assert not new.z_h.requires_grad and not new.z_l.requires_grad
    logits.sum().backward()
    assert model.embed_tokens.weight.grad is not None


def test_initialisation():
    cfg, model = tiny()
    # halt head starts at "never halt": weight 0, bias -5
    assert torch.all(model.q_head.weight == 0) and torch.all(model.q_head.bias == -5)
    # embedding std ~ 1/sqrt(d), scaled by sqrt(d) at the input
    assert model.embed_scale == pytest.approx(math.sqrt(32))
    assert model.embed_tokens.weight.std().item() == pytest.approx(1 / math.sqrt(32), rel=0.3)
    # both latents start from fixed buffers broadcast over positions
    carry = model.init_carry(2)
    assert torch.equal(carry.z_h[0, 0], model.h_init) and torch.equal(carry.z_l[1, 5], model.l_init[0])
    assert "h_init" in model.state_dict() and "l_init" in model.state_dict()


def test_only_last_pass_builds_a_graph():
    cfg, model = tiny()
    modes = []
    original = model._f_eager

    def spy(z, injection):
        modes.append(torch.is_grad_enabled())
        return original(z, injection)

    model._f_eager = spy
    model(model.init_carry(2), torch.randint(1, 6, (2, 16)), n_inner=3, n_outer=3)
    # T passes of (n + 1) calls; only the last pass has grad
    assert modes == [False] * 8 + [True] * 4
    modes.clear()
    with torch.no_grad():
        model(model.init_carry(2), torch.randint(1, 6, (2, 16)), n_inner=3, n_outer=3)
    assert modes == [False] * 12


def test_carry_reset_and_replace_rows():
    a = Carry(torch.zeros(3, 2, 4), torch.zeros(3, 2, 4))
    b = Carry(torch.ones(3, 2, 4), 2 * torch.ones(3, 2, 4))
    c = a.reset_rows(torch.tensor([True, False, True]), b)
    assert c.z_h[:, 0, 0].tolist() == [1, 0, 1] and c.z_l[:, 0, 0].tolist() == [2, 0, 2]
    d = a.replace_rows(torch.tensor([2, 0]), Carry(torch.tensor([5.0, 6.0]).view(2, 1, 1).expand(2, 2, 4),
                                                   torch.ones(2, 2, 4)))
    assert d.z_h[:, 0, 0].tolist() == [6, 0, 5] and d.z_l[:, 0, 0].tolist() == [1, 0, 1]
    assert a.z_h.sum() == 0  # out of place


def test_registries_reject_unknown_names_with_hint():
    with pytest.raises(ConfigError, match=r"recursion.latent_init must name a latent initialiser \(fixed, fixed_svd_aligned, fresh, normal, svd_aligned\), but got 'fixd'.*did you mean 'fixed'"):
        tiny(**{"recursion.latent_init": "fixd"})
    assert "fixed" in LATENT_INITS


def test_flops_count_is_analytic():
    cfg = load_config("sudoku_extreme_trm")
    model = build_model(cfg)
    f_call = 2 * (2 * 97 * (512 * 3072 + 1536 * 512) + 2 * 512 * (97 * 1024 + 512 * 97))
    heads = 2 * (81 * 512 * 11 + 512 * 2)
    expected = 21 * f_call + heads + 2 * (7 * f_call + heads)
    assert model.flops_per_puzzle_step(6, 3) == expected


def test_trunc_normal_init_has_the_asked_std():
    # TRM's init: the realised std equals `std` (plain trunc_normal_ would give 0.88 std)
    from trm_core.model.layers import trunc_normal_init_

    t = trunc_normal_init_(torch.empty(200_000), std=0.5)
    assert abs(t.std().item() - 0.5) < 0.005
    assert t.abs().max().item() <= 2 * 0.5 / 0.8796 + 1e-6


def test_mixer_block_norms_over_the_sequence_axis():
    # TRM's mlp_t block: after the token mixer the residual is RMS-normed per channel over positions
    from trm_core.model.layers import Block

    block = Block(width=32, seq_len=12, token_mixer="mlp", n_heads=4, expansion=4.0, norm_eps=1e-5,
                  rope_theta=10000.0, multiple=16)
    captured = {}
    block.mlp.register_forward_pre_hook(lambda mod, args: captured.setdefault("x", args[0]))
    block(torch.randn(3, 12, 32))
    rms_over_seq = captured["x"].pow(2).mean(dim=1).sqrt()
    assert torch.allclose(rms_over_seq, torch.ones_like(rms_over_seq), atol=1e-3)
