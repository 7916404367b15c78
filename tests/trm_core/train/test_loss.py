"""Cross entropy (softmax, stablemax, label smoothing), halt BCE, step weighting."""

import pytest
import torch
import torch.nn.functional as F

from trm_core.config import LossConfig
from trm_core.model.outputs import log_stablemax
from trm_core.train.loss import STEP_WEIGHTINGS, cell_cross_entropy, supervision_loss


def test_stablemax_definition():
    x = torch.tensor([[-2.0, 0.0, 3.0]])
    s = torch.tensor([1 / 3, 1.0, 4.0], dtype=torch.float64)
    assert torch.allclose(log_stablemax(x), torch.log(s / s.sum()))
    assert log_stablemax(x).dtype == torch.float64


def test_stablemax_cross_entropy():
    logits = torch.randn(2, 5, 4)
    labels = torch.randint(0, 4, (2, 5))
    ce = cell_cross_entropy(logits, labels, "stablemax", 0.0)
    expected = -log_stablemax(logits).gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(-1)
    assert torch.allclose(ce, expected.float())


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_softmax_matches_torch(smoothing):
    logits = torch.randn(3, 6, 5)
    labels = torch.randint(0, 5, (3, 6))
    ce = cell_cross_entropy(logits, labels, "softmax", smoothing)
    expected = F.cross_entropy(logits.transpose(1, 2), labels, label_smoothing=smoothing, reduction="none").mean(-1)
    assert torch.allclose(ce, expected, atol=1e-6)


def test_supervision_loss_halt_target_is_exact_correctness():
    labels = torch.tensor([[2, 3], [2, 3]])
    logits = torch.full((2, 2, 4), -5.0)
    logits[0, 0, 2] = logits[0, 1, 3] = 5.0  # row 0 all right
    logits[1, 0, 2] = logits[1, 1, 2] = 5.0  # row 1 one wrong
    q_halt = torch.tensor([0.0, 0.0], requires_grad=True)
    out = supervision_loss(logits, q_halt, labels, torch.tensor([1, 1]), 4, LossConfig(kind="softmax", halt_weight=1.0))
    assert out.exact.tolist() == [True, False]
    assert out.cell_correct.tolist() == [1.0, 0.5]
    out.loss.backward()
    # BCE gradient pushes q_halt up for the solved row, down for the other
    assert q_halt.grad[0] < 0 < q_halt.grad[1]


def test_uniform_weighting():
    assert STEP_WEIGHTINGS.get("uniform")(torch.tensor([1, 5]), 16, LossConfig()).tolist() == [1.0, 1.0]


def test_cgar_paper_weighting_is_normalised_geometric():
    cfg = LossConfig(step_weight_lambda=0.7)
    w = STEP_WEIGHTINGS.get("cgar_paper")(torch.arange(1, 17), 16, cfg)
    z = sum(0.7 ** t for t in range(16))
    assert torch.allclose(w, torch.tensor([0.7 ** (t - 1) / z * 16 for t in range(1, 17)]))
    assert w.mean().item() == pytest.approx(1.0)  # TRM's loss scale over a uniform mix of steps
    assert (w[1:] < w[:-1]).all()  # early steps weigh more


def test_cgar_code_weighting_is_one_batch_scalar():
    # CGAR's code: 0.7 ** floor(mean of the 0-based steps of the incoming carry); 1-based (1, 3, 6) are 0, 2, 5
    w = STEP_WEIGHTINGS.get("cgar_code")(torch.tensor([1, 3, 6]), 16, LossConfig(step_weight_lambda=0.7))
    assert torch.allclose(w, torch.full((3,), 0.7 ** 2))  # floor(7 / 3) = 2
    w = STEP_WEIGHTINGS.get("cgar_code")(torch.tensor([1, 1]), 16, LossConfig(step_weight_lambda=0.7))
    assert torch.allclose(w, torch.ones(2))


def wta_case():
    """2 puzzles x 3 chains; chain CEs chosen by hand via the logits."""
    labels = torch.tensor([[2, 3], [2, 3]])
    good = torch.tensor([[-5.0, -5, 5, -5], [-5, -5, -5, 5]])  # both cells right, confident
    meh = torch.tensor([[0.0, 0, 1, 0], [0, 0, 0, 1]])  # right but unsure
    bad = torch.tensor([[0.0, 0, 0, 2], [0, 0, 2, 0]])  # wrong
    logits = torch.stack([meh, good, bad, bad, meh, meh]).requires_grad_(True)  # puzzle 1: chains 1 and 2 tie
    return logits, labels


def test_wta_trains_the_lowest_ce_chain_with_ties_to_the_lowest_index():
    logits, labels = wta_case()
    q = torch.zeros(6, requires_grad=True)
    out = supervision_loss(logits, q, labels, torch.tensor([1, 1]), 4, LossConfig(kind="softmax", chain_loss="wta"))
    assert out.winner.tolist() == [1, 1]
    assert out.exact.tolist() == [True, True]
    out.loss.backward()
    trained = [1, 4]
    for r in range(6):
        assert (logits.grad[r].abs().sum() > 0) == (r in trained)
        assert (q.grad[r] != 0) == (r in trained)
    ce = out.rows.ce
    assert out.lm_loss == pytest.approx(((ce[1] + ce[4]) / 2).item())


def test_mean_chain_loss_trains_every_chain():
    logits, labels = wta_case()
    out = supervision_loss(logits, torch.zeros(6), labels, torch.tensor([1, 1]), 4, LossConfig(kind="softmax", chain_loss="mean"))
    out.loss.backward()
    assert (logits.grad.flatten(1).abs().sum(1) > 0).all()
    assert out.lm_loss == pytest.approx(out.rows.ce.mean().item())
