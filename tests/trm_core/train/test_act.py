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
        return x, x.clone()


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
    batch = ActBatch.empty(model, 6, torch.device("cpu"))
    stream, g = CountingStream(), torch.Generator().manual_seed(0)
    assert batch.refill(model, stream, g, 4, 0.0) == 6
    assert batch.inputs[:, 0].tolist() == [1, 2, 3, 4, 5, 6] and not batch.halted.any()
    batch.carry.z_h += 1.0  # pretend the rows made progress
    batch.advance(torch.tensor([1.0, -1, -1, 2.0, -1, -1]), n_supervision=4)
    assert batch.halted.tolist() == [True, False, False, True, False, False]
    assert batch.refill(model, stream, g, 4, 0.0) == 2
    assert batch.inputs[:, 0].tolist() == [7, 2, 3, 8, 5, 6]
    assert batch.steps.tolist() == [0, 1, 1, 0, 1, 1]
    fresh = model.init_carry(6)
    assert torch.equal(batch.carry.z_h[0], fresh.z_h[0]) and not torch.equal(batch.carry.z_h[1], fresh.z_h[1])


def test_halting_rules():
    cfg = load_config("sudoku4_tiny")
    model = build_model(cfg)
    batch = ActBatch.empty(model, 3, torch.device("cpu"))
    batch.refill(model, CountingStream(), torch.Generator().manual_seed(0), 3, 0.0)
    batch.min_steps = torch.tensor([0, 3, 0])
    batch.advance(torch.tensor([1.0, 1.0, -1.0]), n_supervision=3)
    # row 0 halts on q_halt > 0; row 1 must wait for its exploration minimum; row 2 goes on
    assert batch.halted.tolist() == [True, False, False]
    batch.advance(torch.tensor([1.0, 1.0, -1.0]), n_supervision=3)
    batch.advance(torch.tensor([1.0, 1.0, -1.0]), n_supervision=3)
    # at N_sup every row halts
    assert batch.halted.tolist() == [True, True, True]
