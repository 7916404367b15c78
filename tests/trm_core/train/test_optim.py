"""Adam-atan2 against its definition, the lr schedule, EMA, optimiser recipes."""

import math

import pytest
import torch

from trm_core.config import OptimConfig, load_config
from trm_core.errors import ConfigError
from trm_core.model import build_model
from trm_core.train.optim import EMA, OPTIMIZERS, AdamAtan2, lr_factor


def reference_adam_atan2(p, grads, lr, beta1, beta2, wd):
    """The public CUDA kernel (imoneoi/adam-atan2 @42a1aeb, csrc/adam_atan2.cu:47-53, 77-84), step by step
    in float64: step_size = lr / bias_correction1 multiplies atan2(exp_avg, sqrt(exp_avg_sq) / sqrt(bc2))."""
    p = p.double().clone()
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.double()
        step_size, bc2_sqrt = lr / (1 - beta1**t), math.sqrt(1 - beta2**t)
        p = p * (1 - lr * wd)
        m = m + (g - m) * (1 - beta1)
        v = v + (g * g - v) * (1 - beta2)
        p = p - step_size * torch.atan2(m, torch.sqrt(v) / bc2_sqrt)
    return p


def test_adam_atan2_matches_the_kernel():
    torch.manual_seed(0)
    p0 = torch.randn(5, 7)
    grads = [torch.randn(5, 7) * 10 ** torch.empty(1).uniform_(-4, 1) for _ in range(25)]
    param = torch.nn.Parameter(p0.clone())
    opt = AdamAtan2([param], lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    for g in grads:
        param.grad = g.clone()
        opt.step()
    expected = reference_adam_atan2(p0, grads, 3e-3, 0.9, 0.95, 0.1)
    assert torch.allclose(param.detach().double(), expected, atol=1e-6)
    # the bias correction outside the atan2 differs from inside it in the first steps (atan2 is not scale-free)
    inside = p0.double().clone() - 3e-3 * torch.atan2(grads[0].double(), grads[0].double().abs()) * (1 - 0.1 * 3e-3)
    one = torch.nn.Parameter(p0.clone())
    AdamAtan2([one], lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0)
    assert not torch.allclose(reference_adam_atan2(p0, grads[:1], 3e-3, 0.9, 0.95, 0.0), inside, atol=1e-5)


def test_adam_atan2_step_is_bounded_and_scale_invariant():
    # atan2 bounds every coordinate's step by (lr / (1 - beta1^t)) * pi/2 and ignores the gradient's scale;
    # the first step is (lr / 0.1) * atan2(0.1 g, |g|) = 10 lr * atan(0.1) in the gradient's direction
    for scale in (1e-12, 1.0, 1e12):
        param = torch.nn.Parameter(torch.zeros(4))
        opt = AdamAtan2([param], lr=0.1, weight_decay=0.0)
        param.grad = torch.tensor([1.0, -2.0, 0.5, 3.0]) * scale
        opt.step()
        assert param.detach().abs().max() <= 0.1 / 0.1 * math.pi / 2
        expected = torch.full((4,), -0.1 / 0.1 * math.atan(0.1)) * torch.tensor([1, -1, 1, 1])
        assert torch.allclose(param.detach(), expected)


def test_lr_schedule():
    cfg = OptimConfig(lr=1.0, warmup_steps=10, schedule="constant")
    assert lr_factor(0, cfg, 100) == pytest.approx(0.1)
    assert lr_factor(9, cfg, 100) == 1.0 and lr_factor(99, cfg, 100) == 1.0
    cos = OptimConfig(lr=1.0, warmup_steps=0, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, cos, 100) == pytest.approx(1.0)
    assert lr_factor(50, cos, 100) == pytest.approx(0.55)
    assert lr_factor(100, cos, 100) == pytest.approx(0.1)


def test_ema_tracks_weights():
    model = torch.nn.Linear(3, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # warm-up decay min(0.5, 1/10) = 0.1
    assert torch.allclose(ema.model.weight, torch.full((1, 3), 0.9))
    for _ in range(30):
        ema.update(model)  # decay 0.5 now
    assert torch.allclose(ema.model.weight, torch.ones(1, 3), atol=1e-6)
    restored = EMA(model, 0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 31 and torch.equal(restored.model.weight, ema.model.weight)


def test_ema_reads_the_live_puzzle_identifier_table():
    """TRM's EMA averages its parameters; its identifier table is a buffer, so evaluation reads the live table."""
    cfg = load_config("sudoku4_tiny", ["model.prefix_learnable=slot0", "model.prefix_len=2"])
    model = build_model(cfg, n_puzzle_ids=3)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.puzzle_emb.fill_(2.0)
        model.lm_head.weight.add_(1.0)
    ema.update(model)
    assert torch.equal(ema.model.puzzle_emb, model.puzzle_emb)  # copied, not averaged
    assert not torch.equal(ema.model.lm_head.weight, model.lm_head.weight)  # averaged


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_recipe_covers_every_parameter_once(name):
    cfg = load_config("sudoku4_tiny", [f"optim.name={name}"])
    model = build_model(cfg)
    opt = OPTIMIZERS.get(name)(model, cfg.optim)
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert all("base_lr" in g for g in opt.param_groups)


def test_unknown_recipe():
    with pytest.raises(ConfigError, match="did you mean 'adamw'"):
        OPTIMIZERS.get("adamww")


def test_muon_gets_exactly_the_2d_hidden_matrices():
    """SIC's split: Muon on the blocks' 2-D weight matrices only; embeddings, heads, gains, biases,
    prefix/register with AdamW; every parameter in exactly one group."""
    cfg = load_config("sudoku6_wta")
    model = build_model(cfg)
    opt = OPTIMIZERS.get("muon_adamw")(model, cfg.optim)
    muon, adam = opt.optimizers[0], opt.optimizers[1]
    assert isinstance(muon, torch.optim.Muon) and isinstance(adam, torch.optim.AdamW)
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    hidden = {id(p) for p in model.param_groups()["hidden"]}
    assert in_muon == hidden and all(p.ndim == 2 for g in muon.param_groups for p in g["params"])
    others = {name for name, params in model.param_groups().items() if name != "hidden"}
    assert others >= {"embed", "head"}
    names = {id(p): n for n, p in model.named_parameters()}
    assert not any("embed" in names[i] or "head" in names[i] for i in in_muon)
    assert all(p.ndim != 2 or id(p) not in hidden for g in adam.param_groups for p in g["params"])
    ids = [id(p) for o in opt.optimizers for g in o.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert (muon.defaults["lr"], muon.defaults["momentum"], muon.defaults["ns_steps"]) == (0.02, 0.6, 3)
    assert muon.defaults["nesterov"] is True and muon.defaults["weight_decay"] == 0.005


def test_muon_lr_is_scaled_by_sqrt_of_out_over_in():
    """lr x sqrt(max(1, out/in)): an (8, 2) matrix moves twice as far as its (2, 8) transpose
    given the transposed gradient (the orthogonalised update of G^T is the transpose of G's)."""
    cfg = load_config("sudoku6_wta")
    recipe_muon = OPTIMIZERS.get("muon_adamw")(build_model(cfg), cfg.optim).optimizers[0]
    settings = {k: recipe_muon.defaults[k] for k in ("lr", "momentum", "nesterov", "ns_steps", "adjust_lr_fn")}
    torch.manual_seed(0)
    tall = torch.nn.Parameter(torch.randn(8, 2))
    wide = torch.nn.Parameter(tall.detach().t().clone())
    grad = torch.randn(8, 2)
    tall.grad, wide.grad = grad.clone(), grad.t().clone()
    before_tall, before_wide = tall.detach().clone(), wide.detach().clone()
    torch.optim.Muon([tall, wide], weight_decay=0.0, **settings).step()
    d_tall, d_wide = tall.detach() - before_tall, wide.detach() - before_wide
    assert d_tall.abs().max() > 0
    assert torch.allclose(d_tall, 2.0 * d_wide.t(), rtol=1e-4, atol=1e-6)
