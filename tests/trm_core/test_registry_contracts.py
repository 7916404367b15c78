"""One contract test per registry, run over every registered entry (new entries are tested too)."""

import pytest
import torch

from trm_core.config import load_config
from trm_core.model import CARRY_POLICIES, LATENT_INITS, Carry, build_model
from trm_core.train.loss import STEP_WEIGHTINGS
from trm_core.train.optim import OPTIMIZERS
from trm_core.train.schedules import DEPTH_SCHEDULES, Depth


def tiny_model(**over):
    cfg = load_config("sudoku4_tiny", ["model.hidden_size=16", "recursion.chains=2"] + [f"{k}={v}" for k, v in over.items()])
    torch.manual_seed(0)
    return cfg, build_model(cfg)


@pytest.mark.parametrize("name", LATENT_INITS.names())
def test_latent_inits_give_a_carry_of_the_right_shape(name):
    cfg, model = tiny_model(**{"recursion.latent_init": name})
    for chains in (1, 2):
        carry = LATENT_INITS.get(name)(model, 3, chains, torch.Generator().manual_seed(0))
        assert isinstance(carry, Carry)
        assert carry.z_h.shape == carry.z_l.shape == (3 * chains, model.seq_len, model.width)
        assert carry.z_h.dtype == carry.z_l.dtype == model.forward_dtype
        assert torch.isfinite(carry.z_h).all() and torch.isfinite(carry.z_l).all()
    logits = model(carry, torch.randint(1, 6, (6, 16)), 1, 1).logits
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", CARRY_POLICIES.names())
def test_carry_policies_keep_shape_and_keep_the_winner(name):
    before, after = torch.randn(6, 5, 4), torch.randn(6, 5, 4)
    winner = torch.tensor([1, 0, 1])
    out = CARRY_POLICIES.get(name)(before, after, winner)
    assert out.shape == after.shape
    rows = torch.arange(3) * 2 + winner
    assert torch.equal(out[rows], after[rows])  # every policy carries each puzzle's winning chain's new state


@pytest.mark.parametrize("name", DEPTH_SCHEDULES.names())
def test_depth_schedules_give_positive_depths(name):
    cfg = load_config("sudoku4_tiny", [f"recursion.depth_schedule={name}", "recursion.cgar_stages=0:1x1,0.5:2x2"])
    for step in (0, 50, 999):
        depth = DEPTH_SCHEDULES.get(name)(cfg, step, 1000)
        assert isinstance(depth, Depth) and min(depth.n_inner, depth.n_outer, depth.n_supervision) >= 1


@pytest.mark.parametrize("name", STEP_WEIGHTINGS.names())
def test_step_weightings_give_one_nonnegative_weight_per_row(name):
    cfg = load_config("sudoku4_tiny").loss
    w = STEP_WEIGHTINGS.get(name)(torch.tensor([1, 2, 16]), 16, cfg)
    assert w.shape == (3,) and (w >= 0).all()


@pytest.mark.parametrize("name", OPTIMIZERS.names())
@pytest.mark.parametrize("prefix", ["all", "slot0"])
def test_optimiser_recipes_take_a_step(name, prefix):
    cfg, model = tiny_model(**{"optim.name": name, "model.prefix_learnable": prefix})
    opt = OPTIMIZERS.get(name)(model, cfg.optim)
    before = [p.detach().clone() for p in model.parameters()]
    out = model(model.init_carry(2), torch.randint(1, 6, (2, 16)), 1, 1)
    logits, q = out.logits, out.q_halt
    (logits.square().mean() + q.mean()).backward()
    opt.step()
    assert not torch.equal(before[0], next(model.parameters()))
    # every trainable parameter belongs to exactly one optimiser group
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
