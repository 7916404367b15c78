"""One contract test per registry, run over every registered entry (new entries are tested too)."""

import pytest
import torch

from trm_core.config import load_config
from trm_core.model import LATENT_INITS, RECURSION_UPDATES, Carry, build_model
from trm_core.train.loss import STEP_WEIGHTINGS
from trm_core.train.optim import OPTIMIZERS
from trm_core.train.schedules import DEPTH_SCHEDULES, Depth


def tiny_model(**over):
    cfg = load_config("sudoku4_tiny", ["model.hidden_size=16"] + [f"{k}={v}" for k, v in over.items()])
    return cfg, build_model(cfg)


@pytest.mark.parametrize("name", LATENT_INITS.names())
def test_latent_inits_give_a_carry_of_the_right_shape(name):
    cfg, model = tiny_model(**{"recursion.latent_init": name})
    carry = LATENT_INITS.get(name)(model, 3, torch.Generator().manual_seed(0))
    assert isinstance(carry, Carry)
    assert carry.z_h.shape == (3, model.seq_len, model.width)
    assert carry.z_l.shape[1:] == (model.seq_len, model.width) and carry.z_l.shape[0] % 3 == 0


@pytest.mark.parametrize("name", RECURSION_UPDATES.names())
def test_recursion_updates_keep_shape_and_run_in_the_model(name):
    cfg, model = tiny_model(**{"recursion.update": name})
    z, f_z = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    assert RECURSION_UPDATES.get(name)(z, f_z, cfg.recursion).shape == z.shape
    _, logits, _ = model(model.init_carry(2), torch.randint(1, 6, (2, 16)), 1, 1)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", DEPTH_SCHEDULES.names())
def test_depth_schedules_give_positive_depths(name):
    cfg = load_config("sudoku4_tiny", [f"recursion.depth_schedule={name}"])
    for step in (0, 50, 999):
        depth = DEPTH_SCHEDULES.get(name)(cfg, step, 1000)
        assert isinstance(depth, Depth) and min(depth.n_inner, depth.n_outer, depth.n_supervision) >= 1


@pytest.mark.parametrize("name", STEP_WEIGHTINGS.names())
def test_step_weightings_give_one_nonnegative_weight_per_row(name):
    w = STEP_WEIGHTINGS.get(name)(torch.tensor([1, 2, 16]), 16)
    assert w.shape == (3,) and (w >= 0).all()


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimiser_recipes_take_a_step(name):
    cfg, model = tiny_model(**{"optim.name": name})
    opt = OPTIMIZERS.get(name)(model, cfg.optim)
    before = model.lm_head.weight.detach().clone()
    _, logits, q = model(model.init_carry(2), torch.randint(1, 6, (2, 16)), 1, 1)
    (logits.square().mean() + q.mean()).backward()
    opt.step()
    assert not torch.equal(before, model.lm_head.weight)
