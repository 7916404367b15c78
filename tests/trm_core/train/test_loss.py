"""Cross entropy (softmax, stablemax, label smoothing), halt BCE, step weighting."""

import pytest
import torch
import torch.nn.functional as F

from trm_core.config import LossConfig
from trm_core.train.loss import STEP_WEIGHTINGS, cell_cross_entropy, log_stablemax, supervision_loss


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
    assert STEP_WEIGHTINGS.get("uniform")(torch.tensor([1, 5]), 16).tolist() == [1.0, 1.0]
