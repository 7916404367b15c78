"""The papers' training methods end to end on tiny CPU runs: WTA chains, random streams, puzzle
embedding, checkpoint carry, determinism, the compiled step, and several methods composed in one run."""

import contextlib
import json
import shutil

import pytest
import torch

from trm_core.config import load_config
from trm_core.model import Dynamics, build_model
from trm_core.train.loop import train, train_step
from trm_core.train.loss import supervision_loss
from trm_core.data.load import load_data
from trm_core.train.session import build_session

TINY = ["data.n_train=200", "data.n_test=24", "model.hidden_size=32", "train.batch_size=8", "train.steps=6",
        "train.eval_interval=3", "train.log_interval=1", "recursion.n_supervision=3", "device=cpu",
        "recursion.halt_exploration_prob=0.5", "train.cpu_threads=1"]


def tiny_cfg(*extra):
    return load_config("sudoku4_tiny", TINY + list(extra))


def test_wta_losers_get_exactly_zero_gradient():
    """Parameter gradients of a K = 3 WTA step equal those of a batch holding only the winning rows
    (the losers masked out by construction), and the losers' rows receive exactly zero gradient."""
    cfg = tiny_cfg("recursion.chains=3", "recursion.latent_init=fresh", "loss.kind=stablemax")
    torch.manual_seed(0)
    model = build_model(cfg, 6, 16)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, 6, (4, 16), generator=g)
    labels = torch.randint(2, 6, (4, 16), generator=g)
    carry = model.init_carry(4, 3, g)
    rows_in = x.repeat_interleave(3, dim=0)
    steps = torch.tensor([1, 2, 1, 3])

    z_l = carry.z_l.clone().requires_grad_(True)  # a leaf per row, to read each row's gradient
    out = model(type(carry)(carry.z_h, z_l), rows_in, 2, 1)
    loss = supervision_loss(out.logits, out.q_halt, labels, steps, 3, cfg.loss)
    loss.loss.backward()
    winner_rows = torch.arange(4) * 3 + loss.winner
    loser = torch.ones(12, dtype=torch.bool)
    loser[winner_rows] = False
    assert torch.equal(z_l.grad[loser], torch.zeros_like(z_l.grad[loser]))
    assert z_l.grad[winner_rows].abs().sum() > 0
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    model.zero_grad()
    only = type(carry)(carry.z_h[winner_rows], carry.z_l[winner_rows])
    out1 = model(only, x, 2, 1)
    ref = supervision_loss(out1.logits, out1.q_halt, labels, steps, 3, cfg.loss)
    ref.loss.backward()
    for n, p in model.named_parameters():
        assert torch.allclose(grads[n], p.grad, rtol=1e-5, atol=1e-7), n


def test_wta_run_reports_chain_metrics(tmp_path):
    final = train(tiny_cfg("recursion.chains=4", "recursion.latent_init=svd_aligned", "recursion.expunge_cos=0.99"),
                  out_dir=tmp_path)
    wins = [final[f"train/win_rate/{k}"] for k in range(4)]
    assert sum(wins) == pytest.approx(1.0) and all(0 <= w <= 1 for w in wins)
    assert final["train/winner_ce"] <= final["train/mean_ce"] + 1e-6
    assert -1 <= final["train/chain_cos"] <= 1
    assert "eval/exact_acc" in final and final["final/exact_acc"] == final["eval/exact_acc"]


COMPOSED = {
    # switch on -> the same key off; every one of them in one run
    "recursion.chains=2": "recursion.chains=1",
    "recursion.latent_init=normal": "recursion.latent_init=fixed",
    "recursion.damping=0.05": "recursion.damping=0",
    "recursion.noise_beta=0.05": "recursion.noise_beta=0",
    "recursion.state_noise_l=0.1": "recursion.state_noise_l=0",
    "recursion.carry_l=top1": "recursion.carry_l=all",
    "recursion.expunge_cos=0.01": "recursion.expunge_cos=0",
    "recursion.depth_schedule=cgar": "recursion.depth_schedule=constant",
    "loss.step_weighting=cgar_paper": "loss.step_weighting=uniform",
    "data.hint_k=2": "data.hint_k=0",
    "optim.name=muon_adamw": "optim.name=adamw",
    "model.swiglu=sic": "model.swiglu=standard",
    "model.halt_register=true": "model.halt_register=false",
    "optim.ema_start_step=2": "optim.ema_start_step=0",
}
"""Switches of the papers' methods. data.hint_fraction=0.5 and the CGAR stages ride along (they need their
switch); hint_fraction is set to 0 with hint_k=0 (validation requires hints for a fraction)."""


def fingerprint(*overrides: str, steps: int = 3) -> tuple[list[float], torch.Tensor]:
    """The first steps' losses and the evaluation model's logits on four held-out puzzles after them."""
    extra = ["recursion.cgar_stages=0:1x1,0.5:2x2", "data.hint_fraction=0.5", "optim.ema_decay=0.5"]
    if "data.hint_k=0" in overrides:
        extra.remove("data.hint_fraction=0.5")
    cfg = tiny_cfg(*extra, *overrides)
    data = load_data(cfg)
    s = build_session(cfg, torch.device("cpu"), data.dataset, data.stream)
    losses = [float(train_step(s, contextlib.nullcontext)["loss"]) for _ in range(steps)]
    x = torch.as_tensor(data.eval_set.inputs[:4].astype("int64"))
    model, r = s.eval_model, cfg.recursion
    with torch.no_grad():
        carry = model.eval_carry(4, torch.Generator().manual_seed(0))
        out = model(carry, x, r.n_inner, r.n_outer, Dynamics.evaluation(r, torch.Generator().manual_seed(1)))
    return losses, out.logits


def test_methods_compose_and_each_changes_the_run():
    """All the switches in one run (WTA chains with SIC's top1 carry, expunge and state noise, EqR's random
    init and damped noisy update, CGAR's curriculum and weighting, hints, SIC's optimiser, SwiGLU and HALT
    token, a delayed EMA); then each switch turned off alone changes the losses or the evaluation logits,
    so none of them is silently ignored when composed."""
    on = list(COMPOSED)
    losses, logits = fingerprint(*on)
    assert all(torch.isfinite(torch.tensor(losses)))
    for switch, off in COMPOSED.items():
        other_losses, other_logits = fingerprint(*[off if s == switch else s for s in on])
        same_shape = other_logits.shape == logits.shape
        assert other_losses != losses or not same_shape or not torch.allclose(other_logits, logits), switch


def test_top1_carry_keeps_the_losers_state_from_before_the_step():
    cfg = tiny_cfg("recursion.chains=3", "recursion.latent_init=normal", "recursion.carry_h=top1",
                   "recursion.carry_l=top1", "recursion.n_supervision=8")
    data = load_data(cfg)
    s = build_session(cfg, torch.device("cpu"), data.dataset, data.stream)
    train_step(s, contextlib.nullcontext)  # fill the batch
    before = s.batch.carry
    train_step(s, contextlib.nullcontext)
    after = s.batch.carry
    going_on = (s.batch.steps == 2).repeat_interleave(3)  # the puzzles that were not refilled
    same = (after.z_l == before.z_l).flatten(1).all(1) & (after.z_h == before.z_h).flatten(1).all(1)
    per_puzzle = same[going_on].view(-1, 3).sum(1)
    assert going_on.any() and (per_puzzle == 2).all()  # two losers kept their state, one winner moved on


def test_expunge_drops_chains_in_training_and_a_refill_revives_them(tmp_path):
    cfg = tiny_cfg("recursion.chains=4", "recursion.latent_init=svd_aligned", "recursion.expunge_cos=0.01",
                   "recursion.n_supervision=8", "recursion.halt_exploration_prob=0")
    data = load_data(cfg)
    s = build_session(cfg, torch.device("cpu"), data.dataset, data.stream)
    stats = [train_step(s, contextlib.nullcontext) for _ in range(3)]
    assert sum(float(x["expunged"]) for x in stats) > 0
    alive = s.batch.alive.view(-1, 4)
    assert (alive.sum(1) >= 1).all() and (alive.sum(1) < 4).any()
    assert (alive.sum(1) >= 4 - 3).all()  # at most one per puzzle per step
    s.batch.halted[:] = True
    s.batch.refill(s.model, s.stream, s.streams.init)
    assert s.batch.alive.all()
    train(cfg, out_dir=tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(x.get("train/expunged", 0) for x in lines) > 0 and min(x.get("train/live_chains", 4) for x in lines) < 4


def test_random_depth_logs_what_was_drawn(tmp_path):
    train(tiny_cfg("recursion.depth_schedule=random", "recursion.random_spread_n=1", "train.steps=8"), out_dir=tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if "eval/" not in x]
    drawn = {(x["train/n_inner"], x["train/n_outer"]) for x in lines}
    assert len(drawn) > 1 and all(1 <= n <= 3 and 1 <= t <= 3 for n, t in drawn)


def test_random_init_evaluation_is_reproducible_and_streams_are_separate():
    cfg = tiny_cfg("recursion.latent_init=normal", "recursion.noise_beta=0.05")
    data = load_data(cfg)
    s = build_session(cfg, torch.device("cpu"), data.dataset, data.stream)
    from trm_core.train.evaluate import evaluate
    from trm_core.train.schedules import full_depth

    a = evaluate(s.model, data.eval_set, full_depth(cfg), 7, s.device, seed=3)
    b = evaluate(s.model, data.eval_set, full_depth(cfg), 7, s.device, seed=3)
    assert a == b

    def drawn_puzzles(sigma: float):
        c = tiny_cfg("recursion.latent_init=normal", f"recursion.init_sigma_l={sigma}")
        d = load_data(c)
        sess = build_session(c, torch.device("cpu"), d.dataset, d.stream)
        seen, explore = [], []
        for _ in range(4):
            train_step(sess, contextlib.nullcontext)
            seen.append(sess.batch.inputs.clone())
            explore.append(sess.batch.steps.clone())
        return torch.stack(seen), sess.streams.explore.get_state()

    (x1, e1), (x2, e2) = drawn_puzzles(1.0), drawn_puzzles(8.0)
    # the init scale changes the latents, not which puzzles are drawn nor the exploration stream
    assert torch.equal(e1, e2)
    assert torch.equal(x1, x2)


def test_refill_draws_init_only_for_refilled_rows():
    cfg = tiny_cfg("recursion.latent_init=normal")
    data = load_data(cfg)
    s = build_session(cfg, torch.device("cpu"), data.dataset, data.stream)
    state = s.streams.init.get_state()
    s.batch.refill(s.model, s.stream, s.streams.init)  # fills all 8 puzzles
    probe = torch.Generator()
    probe.set_state(state)
    s.model.init_carry(8, 1, probe)
    assert torch.equal(probe.get_state(), s.streams.init.get_state())


def test_puzzle_embedding_slot0_only_changes_and_signsgd_step():
    cfg = tiny_cfg("model.prefix_learnable=slot0", "model.prefix_len=3", "optim.puzzle_emb_lr=0.01",
                   "optim.puzzle_emb_weight_decay=0.5", "optim.warmup_steps=0")
    data = load_data(cfg)
    s = build_session(cfg, torch.device("cpu"), data.dataset, data.stream)
    table = s.model.puzzle_emb.detach()  # a view: follows the optimiser's in-place updates
    assert torch.equal(table, torch.zeros_like(table))
    train_step(s, contextlib.nullcontext)
    # SignSGD from zero: p = -lr * sign(grad) on row 0 (the only identifier); slots 1.. stay zero
    assert table[0].abs().max() == pytest.approx(0.01) and (table[0].abs() == 0.01).float().mean() > 0.9
    x = s.model.embed(s.batch.inputs[:2], s.batch.puzzle_ids[:2])
    assert torch.all(x[:, 1:3] == 0) and x[:, 0].abs().sum() > 0
    before = table.clone()
    train_step(s, contextlib.nullcontext)
    step = table - before * (1 - 0.01 * 0.5)
    assert torch.allclose(step.abs()[before.ne(0) | step.ne(0)], torch.tensor(0.01), atol=1e-7)


@pytest.mark.parametrize("carry", ["full", "bf16", "none"])
def test_checkpoint_carry_options(tmp_path, carry):
    # N_sup 4: at step 3 no puzzle has finished, so a resume without the carry must refill the batch
    extra = ["train.eval_interval=3", f"train.checkpoint_carry={carry}", "recursion.n_supervision=4"]
    train(tiny_cfg(*extra), out_dir=tmp_path / "a")
    train(tiny_cfg(*extra, "train.steps=3"), out_dir=tmp_path / "b")
    ckpt = tmp_path / "b" / "checkpoints" / "step_00000003"
    data = torch.load(ckpt / "checkpoint.pt", weights_only=True)
    if carry == "none":
        assert data["batch"] == {}
    else:
        assert data["batch"]["z_h"].dtype == (torch.float32 if carry == "full" else torch.bfloat16)
    train(tiny_cfg(*extra), out_dir=tmp_path / "b", resume_from=ckpt)

    def losses(run):
        rows = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["train/loss"] for r in rows if "eval/exact_acc" not in r}

    a, b = losses("a"), losses("b")
    assert list(b) == [1, 2, 3, 4, 5, 6] and [a[k] for k in (1, 2, 3)] == [b[k] for k in (1, 2, 3)]
    if carry == "full":
        assert a == b
    elif carry == "none":
        assert a[4] != b[4]  # new puzzles after the refill


def test_deterministic_runs_write_identical_losses(tmp_path):
    for run in ("a", "b"):
        train(tiny_cfg("train.deterministic=true", "recursion.latent_init=normal", "recursion.noise_beta=0.01"),
              out_dir=tmp_path / run)

    def losses(run):
        return [json.loads(x).get("train/loss") for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert losses("a") == losses("b")
    torch.use_deterministic_algorithms(False)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler (g++)")
def test_compiled_step_gives_the_eager_losses(tmp_path):
    """train.compile (the block stack through torch.compile): same seed, six steps (refills, halting,
    two evaluations), in fp32 every logged loss of the compiled run equals the eager run's to float
    tolerance, and the compiled run really compiled something."""
    from torch._inductor import config as inductor_config

    counts = torch._dynamo.utils.counters
    counts.clear()
    with inductor_config.patch(compile_threads=1):  # no compile-worker pool left behind in the test process
        for run, compiled in (("eager", "false"), ("compiled", "true")):
            train(tiny_cfg("optim.ema_decay=0", f"train.compile={compiled}", "train.dtype=float32"), out_dir=tmp_path / run)
    assert counts["stats"]["unique_graphs"] >= 1, "train.compile=true did not compile anything"

    def losses(run):
        lines = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [(m["step"], m["train/loss"], m.get("eval/exact_acc")) for m in lines if "train/loss" in m]

    eager, compiled = losses("eager"), losses("compiled")
    assert [s for s, _, _ in eager] == [s for s, _, _ in compiled] and {s for s, _, _ in eager} == set(range(1, 7))
    for (_, a, acc_a), (_, b, acc_b) in zip(eager, compiled):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
        assert acc_b == acc_a
    torch._dynamo.reset()


def test_eval_dynamics_use_eval_overrides():
    cfg = tiny_cfg("recursion.noise_beta=0.1", "recursion.eval_noise_beta=0")
    assert Dynamics.evaluation(cfg.recursion).noise_beta == 0 and Dynamics.training(cfg.recursion).noise_beta == 0.1


def test_fixed_point_training_logs_iterations_and_residual(tmp_path):
    final = train(tiny_cfg("recursion.solver=fixed_point", "recursion.fp_max_iter=5", "recursion.fp_grad=ift",
                           "train.steps=3"), out_dir=tmp_path)
    assert 2 <= final["train/fp_iters"] <= 5 and final["train/fp_residual"] >= 0


def test_compile_without_a_compiler_warns_once_and_trains_eager(tmp_path, monkeypatch):
    from trm_core import runtime

    monkeypatch.setattr(runtime, "compiler_available", lambda: False)
    counts = torch._dynamo.utils.counters
    counts.clear()
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler") as caught:
        final = train(tiny_cfg("train.compile=true", "train.steps=2", "train.eval_interval=2"), out_dir=tmp_path)
    assert len([w for w in caught if "compiler" in str(w.message)]) == 1
    assert counts["stats"]["unique_graphs"] == 0 and final["step"] == 2
