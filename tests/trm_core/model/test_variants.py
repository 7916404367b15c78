"""Model variants switched from config: dynamics (EqR), SIC SwiGLU, HALT register, puzzle
embedding (TRM's slot 0), precision (TRM's bf16 numerics vs autocast)."""

import pytest
import torch

from trm_core.config import load_config
from trm_core.model import Dynamics, build_model
from trm_core.model.layers import SwiGLU, apply_rope, rms_norm

SMALL = ["model.hidden_size=32", "model.n_heads=4", "model.prefix_len=2", "device=cpu"]


def tiny(*extra):
    cfg = load_config("sudoku4_tiny", SMALL + list(extra))
    torch.manual_seed(0)
    return cfg, build_model(cfg)


def trm_reference_step(model, carry, x_tokens, n, t):
    """TRM's supervision step written out by hand: z_L <- f(z_L + z_H + x) n times, z_H <- f(z_H + z_L)."""
    x = model.embed(x_tokens)
    z_h, z_l = carry.z_h, carry.z_l
    for i in range(t):
        with torch.set_grad_enabled(i == t - 1):
            for _ in range(n):
                z_l = model._f_eager(z_l, z_h + x)
            z_h = model._f_eager(z_h, z_l)
    return model.lm_head(z_h[:, model.n_special:]), model.q_head(z_h[:, 0]).float()[:, 0]


@pytest.mark.parametrize("mixer", ["mlp", "attention"])
def test_zero_damping_and_noise_is_trm_bit_for_bit(mixer):
    cfg, model = tiny(f"model.token_mixer={mixer}", "recursion.damping=0", "recursion.noise_beta=0")
    x = torch.randint(1, 6, (3, 16), generator=torch.Generator().manual_seed(1))
    dyn = Dynamics.training(cfg.recursion, torch.Generator().manual_seed(2))
    out = model(model.init_carry(3), x, 2, 3, dyn)
    (out.logits.square().mean() + out.q_halt.mean()).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    logits, q = trm_reference_step(model, model.init_carry(3), x, 2, 3)
    (logits.square().mean() + q.mean()).backward()
    assert torch.equal(out.logits, logits) and torch.equal(out.q_halt, q)
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, model.parameters()))


def test_damped_noisy_update_follows_eqr_formula():
    z, f_z = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    dyn = Dynamics(damping=0.25, noise_beta=0.1, generator=torch.Generator().manual_seed(5))
    eps = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(dyn(z, f_z), z + 0.75 * (f_z - z) + 0.1 * eps)
    assert torch.equal(Dynamics(0.0, 0.0)(z, f_z), f_z)


def test_noise_is_reproducible_from_its_stream_and_eval_overrides_apply():
    cfg, model = tiny("recursion.noise_beta=0.05", "recursion.eval_noise_beta=0", "recursion.eval_damping=0.5")
    x = torch.randint(1, 6, (2, 16))
    run = lambda seed: model(model.init_carry(2), x, 2, 2, Dynamics.training(cfg.recursion, torch.Generator().manual_seed(seed))).logits
    assert torch.equal(run(7), run(7)) and not torch.equal(run(7), run(8))
    ev = Dynamics.evaluation(cfg.recursion)
    assert (ev.damping, ev.noise_beta) == (0.5, 0.0)
    cfg2, _ = tiny("recursion.noise_beta=0.05", "recursion.damping=0.1")
    assert (Dynamics.evaluation(cfg2.recursion).damping, Dynamics.evaluation(cfg2.recursion).noise_beta) == (0.1, 0.05)


def test_sic_swiglu_formula_in_both_mixers():
    torch.manual_seed(0)
    mlp = SwiGLU(8, 4.0, 16, kind="sic")
    x = torch.randn(3, 5, 8)
    g, v = mlp.gate_up(x).chunk(2, dim=-1)
    assert torch.allclose(mlp(x), mlp.down(torch.sigmoid(g) * rms_norm(g * v, 1e-5)))
    cfg, model = tiny("model.swiglu=sic")
    assert model.blocks[0].mlp.kind == "sic" and model.blocks[0].mixer.mlp.kind == "sic"
    cfg, model = tiny("model.swiglu=sic", "model.token_mixer=attention")
    assert model.blocks[0].mlp.kind == "sic"


def test_halt_register_is_an_extra_token_read_by_the_halt_head():
    cfg, model = tiny("model.halt_register=true")
    assert model.embed_tokens.num_embeddings == 6 + 1 and model.n_special == 1 + 2 and model.seq_len == 16 + 3
    x = model.embed(torch.randint(1, 6, (2, 16)))
    assert torch.allclose(x[:, 0], model.embed_scale * model.embed_tokens.weight[6])
    out = model(model.init_carry(2), torch.randint(1, 6, (2, 16)), 1, 1)
    # SIC's head predicts over its whole vocabulary, the HALT token included (code/model.py:1297-1303)
    assert out.logits.shape == (2, 16, 7)


def test_sic_heads_have_a_bias_and_a_single_halt_output():
    cfg, model = tiny("model.halt_register=true", "model.head_bias=true", "model.q_continue=false")
    assert model.lm_head.bias.shape == (7,) and model.q_head.weight.shape == (1, 32)
    out = model(model.init_carry(2), torch.randint(1, 6, (2, 16)), 1, 1)
    assert out.q_halt.shape == (2,) and torch.all(out.q_halt == -5.0)  # starts at "never halt"


def test_puzzle_identifier_embedding_in_slot_zero():
    cfg = load_config("sudoku4_tiny", SMALL + ["model.prefix_learnable=slot0"])
    model = build_model(cfg, n_puzzle_ids=5)
    assert model.puzzle_emb.shape == (5, 32) and model.prefix is None
    with torch.no_grad():
        model.puzzle_emb[3] = 1.0
    x = model.embed(torch.randint(1, 6, (2, 16)), torch.tensor([3, 0]))
    assert torch.all(x[0, 0] == model.embed_scale) and torch.all(x[1, 0] == 0)
    assert torch.all(x[:, 1] == 0)  # slots 1.. stay zero (TRM pads its embedding)
    # the table is a lookup table, outside the parameter count (as TRM's buffer)
    assert model.n_params() == sum(p.numel() for p in model.parameters()) - 5 * 32


def test_rope_is_computed_in_fp32():
    x = torch.randn(2, 3, 7, 8).to(torch.bfloat16)
    from trm_core.model.layers import rope_tables

    cos, sin = rope_tables(7, 8, 10000.0)
    expected = apply_rope(x.float(), cos, sin).to(torch.bfloat16)
    assert torch.equal(apply_rope(x, cos, sin), expected)


@pytest.mark.parametrize("mixer", ["mlp", "attention"])
def test_reference_precision_vs_autocast_on_cpu_bf16(mixer):
    """Both bf16 modes stay close to fp32; the reference keeps its carry in bf16, autocast in fp32."""
    cfg, model = tiny(f"model.token_mixer={mixer}")
    x = torch.randint(1, 6, (4, 16), generator=torch.Generator().manual_seed(3))
    fp32 = model(model.init_carry(4), x, 2, 2).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = model(model.init_carry(4), x, 2, 2)
    model.forward_dtype = torch.bfloat16
    ref = model(model.init_carry(4), x, 2, 2)
    assert amp.carry.z_h.dtype == torch.float32 and ref.carry.z_h.dtype == torch.bfloat16
    assert ref.logits.dtype == torch.bfloat16
    scale = fp32.abs().max()
    for logits in (amp.logits, ref.logits):
        err = (logits.float() - fp32).abs().max() / scale
        assert err < 0.1, err
    # the two bf16 modes agree on the answer for nearly every cell
    agree = (amp.logits.argmax(-1) == ref.logits.argmax(-1)).float().mean()
    assert agree > 0.9


def test_fixed_point_solvers_find_the_fixed_point_of_a_contraction():
    from trm_core.model.fixed_point import anderson, plain_iteration

    torch.manual_seed(0)
    q = torch.linalg.qr(torch.randn(6, 6)).Q
    a = 0.9 * q  # a slow contraction: z -> tanh(a z + b), Lipschitz constant 0.9
    b = torch.randn(4, 6)
    fn = lambda z: torch.tanh(z @ a.T + b)
    iters = {}
    for solver in (plain_iteration, anderson):
        z, iters[solver.__name__], residual = solver(fn, torch.zeros(4, 6), 1e-5, 300)
        assert residual < 1e-5 and torch.allclose(fn(z), z, atol=1e-4), solver.__name__
    assert iters["anderson"] < iters["plain_iteration"], iters


def test_implicit_gradient_matches_the_analytic_one():
    """For z* = tanh(w z* + x) the IFT gradient of sum(z*) w.r.t. x is (I - J)^-T dtanh terms;
    compare with differentiating through a long unrolled solve (the same fixed point)."""
    from trm_core.model.fixed_point import solve_with_grad

    torch.manual_seed(1)
    w = torch.randn(5, 5) * 0.2
    x = torch.randn(3, 5, requires_grad=True)
    fn = lambda z: torch.tanh(z @ w.T + x)
    z, stats = solve_with_grad(fn, torch.zeros(3, 5), "anderson", "ift", 1e-8, 200)
    z.sum().backward()
    ift = x.grad.clone()
    x.grad = None
    z = torch.zeros(3, 5)
    for _ in range(200):  # unrolled to convergence: backprop through it gives the exact gradient
        z = fn(z)
    z.sum().backward()
    assert torch.allclose(ift, x.grad, atol=1e-5) and stats["fp_residual"] < 1e-6
    x.grad = None
    z1, _ = solve_with_grad(fn, torch.zeros(3, 5), "plain", "one_step", 1e-8, 200)
    z1.sum().backward()
    assert not torch.allclose(x.grad, ift, atol=1e-4)  # one-step is an approximation


def test_fixed_point_solver_runs_in_the_model():
    cfg, model = tiny("recursion.solver=fixed_point", "recursion.fp_max_iter=6", "recursion.fp_method=anderson")
    out = model(model.init_carry(2), torch.randint(1, 6, (2, 16)), 2, 2)
    assert set(out.solver_stats) == {"fp_iters", "fp_residual"} and 2 <= out.solver_stats["fp_iters"] <= 6
    out.logits.square().mean().backward()
    assert model.blocks[0].mlp.gate_up.weight.grad is not None
