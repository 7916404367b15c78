"""ACT in training: refill keeps the batch full, exploration bounds, halting rules."""

import torch

from trm_core.config import load_config
from trm_core.model import build_model
from trm_core.train.act import ActBatch, exploration_minimum


class CountingStream:
    """Hands out puzzles numbered 1, 2, 3, ... (the number fills the first cell)."""

    def __init__(self):
        self.next = 1

    def sample(self, n):
        ids = torch.arange(self.next, self.next + n)
        self.next += n
        x = torch.ones(n, 16, dtype=torch.long)
        x[:, 0] = ids
        return x, x.clone(), torch.zeros(n, dtype=torch.long)


def test_exploration_minimum_bounds():
    g = torch.Generator().manual_seed(0)
    m = exploration_minimum(20000, 16, 0.1, g)
    explored = m[m > 0]
    assert explored.min() >= 2 and explored.max() <= 16
    assert set(explored.unique().tolist()) == set(range(2, 17))
    assert abs((m > 0).float().mean().item() - 0.1) < 0.01
    assert exploration_minimum(5, 1, 1.0, g).tolist() == [0] * 5


def test_refill_keeps_batch_full_and_resets_halted_rows():
    cfg = load_config("sudoku4_tiny")
    model = build_model(cfg)
    batch = ActBatch.empty(model, 6, 1, torch.device("cpu"))
    stream, g = CountingStream(), torch.Generator().manual_seed(0)
    assert batch.refill(model, stream, g) == 6
    assert batch.inputs[:, 0].tolist() == [1, 2, 3, 4, 5, 6] and not batch.halted.any()
    batch.carry.z_h.add_(1.0)  # pretend the rows made progress
    batch.advance(torch.tensor([1.0, -1, -1, 2.0, -1, -1]), 4, 0.0, g)
    assert batch.halted.tolist() == [True, False, False, True, False, False]
    assert batch.refill(model, stream, g) == 2
    assert batch.inputs[:, 0].tolist() == [7, 2, 3, 8, 5, 6]
    assert batch.steps.tolist() == [0, 1, 1, 0, 1, 1]
    fresh = model.init_carry(6)
    assert torch.equal(batch.carry.z_h[0], fresh.z_h[0]) and not torch.equal(batch.carry.z_h[1], fresh.z_h[1])


def test_halting_rules():
    cfg = load_config("sudoku4_tiny")
    model = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    batch = ActBatch.empty(model, 3, 1, torch.device("cpu"))
    batch.refill(model, CountingStream(), g)
    q = torch.tensor([1.0, 1.0, -1.0])
    batch.advance(q, 3, 0.0, g)
    # without exploration rows 0 and 1 halt on q_halt > 0; row 2 goes on
    assert batch.halted.tolist() == [True, True, False]
    batch.advance(q, 3, 0.0, g)
    batch.advance(q, 3, 0.0, g)
    # at N_sup every row halts
    assert batch.halted.tolist() == [True, True, True]


def test_exploration_is_redrawn_every_step():
    # TRM: with p = 1 a row must have had U{2..N_sup} steps before it may halt on q_halt, redrawn
    # each step; so no row halts at step 1, and at N_sup every row halts whatever was drawn.
    cfg = load_config("sudoku4_tiny")
    model = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    batch = ActBatch.empty(model, 2000, 1, torch.device("cpu"))
    batch.refill(model, CountingStream(), g)
    q = torch.ones(2000)
    batch.advance(q, 16, 1.0, g)
    assert not batch.halted.any()
    batch.advance(q, 16, 1.0, g)
    # at step 2 a row halts when the fresh minimum is 2: probability 1/15
    assert 0.03 < batch.halted.float().mean().item() < 0.11
    for _ in range(14):
        batch.advance(q, 16, 1.0, g)
    assert batch.halted.all()


def test_refill_with_chains_draws_latents_for_refilled_rows_only():
    cfg = load_config("sudoku4_tiny", ["recursion.chains=2", "recursion.latent_init=fresh"])
    model = build_model(cfg)
    batch = ActBatch.empty(model, 3, 2, torch.device("cpu"))
    stream, g = CountingStream(), torch.Generator().manual_seed(0)
    batch.refill(model, stream, g)
    assert batch.carry.z_l.shape[0] == 6 and batch.rows_of(torch.tensor([1, 2])).tolist() == [2, 3, 4, 5]
    before = batch.carry.z_l.clone()
    batch.advance(torch.tensor([1.0, -1.0, -1.0]), 4, 0.0, g)
    state = g.get_state()
    batch.refill(model, stream, g)
    # exactly one puzzle's two chains were drawn: the generator moved by 2 fresh vectors, not 6
    probe = torch.Generator()
    probe.set_state(state)
    model.init_carry(1, 2, probe)
    assert torch.equal(probe.get_state(), g.get_state())
    assert not torch.equal(batch.carry.z_l[0], before[0]) and torch.equal(batch.carry.z_l[2:], before[2:])
    inputs, ids = batch.row_inputs()
    assert inputs.shape == (6, 16) and torch.equal(inputs[0], inputs[1]) and ids.shape == (6,)


def test_carry_policies_apply_per_puzzle():
    cfg = load_config("sudoku4_tiny", ["recursion.chains=2", "recursion.carry_h=copy", "recursion.carry_l=all"])
    model = build_model(cfg)
    batch = ActBatch.empty(model, 2, 2, torch.device("cpu"))
    batch.refill(model, CountingStream(), None)
    z = torch.arange(4, dtype=torch.float32).view(4, 1, 1).expand(4, model.seq_len, model.width)
    from trm_core.model.latents import Carry

    batch.apply_carry_policies(Carry(z, z + 10), torch.tensor([1, 0]), cfg.recursion)
    out = batch.carry
    assert out.z_h[:, 0, 0].tolist() == [1, 1, 2, 2] and out.z_l[:, 0, 0].tolist() == [10, 11, 12, 13]
