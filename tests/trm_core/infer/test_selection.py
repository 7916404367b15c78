"""Selection rules on hand-made rollout views; the oracle bounds every rule on random ones."""

import pytest
import torch

from trm_core.errors import ConfigError
from trm_core.infer import diagnostics as diag
from trm_core.infer.selection import CEILINGS, SELECTION_RULES, View, score

A, B, C, D = [0, 0, 0], [1, 1, 1], [2, 2, 2], [0, 1, 2]


def view(preds, q=None, halt=None, halt_pred=None, halt_q=None, residual=None, logit_residual=None, steps=None,
         labels=(0, 0, 0), vocab=3, probs=None):
    """One puzzle; members given as lists."""
    m = len(preds)
    pred = torch.tensor([preds])
    col = lambda v, fill: torch.tensor([v if v is not None else [fill] * m], dtype=torch.float32)  # noqa: E731
    halt_step = torch.tensor([halt if halt is not None else [0] * m])
    return View(
        pred=pred, probs=probs if probs is not None else torch.nn.functional.one_hot(pred, vocab).float(),
        q=col(q, 0.0), steps=torch.tensor([steps if steps is not None else [8] * m]), halt_step=halt_step,
        halt_pred=torch.tensor([halt_pred]) if halt_pred is not None else pred.clone(), halt_q=col(halt_q, float("nan")),
        residual=col(residual, 1.0), logit_residual=col(logit_residual, 1.0), labels=torch.tensor([labels]))


def rule(name, v):
    return SELECTION_RULES.get(name)(v)


def test_halt_first_picks_the_earliest_halt_and_breaks_ties_by_q():
    v = view([A, B, C, D], halt=[3, 2, 0, 2], halt_q=[0.1, 0.5, float("nan"), 1.5],
             halt_pred=[A, B, C, [2, 1, 0]], q=[9.0, 0.0, 0.0, 0.0])
    d = rule("halt_first", v)
    assert d.pred.tolist() == [[2, 1, 0]]  # member 3 (step 2, larger q), its answer at the halt, not at the end
    assert d.nfe.tolist() == [4 * 2]  # four members stop at step 2


def test_halt_first_same_step_same_q_goes_to_the_lower_member():
    v = view([A, B], halt=[2, 2], halt_q=[0.7, 0.7], halt_pred=[A, B])
    assert rule("halt_first", v).pred.tolist() == [A]


def test_halt_first_without_halts_falls_back_to_member_zero_or_the_highest_q():
    # SIC code/experiment.py:1274-1278: a puzzle no member halted on takes member 0's final logits
    v = view([A, B, C], q=[-3.0, -1.0, -2.0], steps=[8, 8, 8])
    d = rule("halt_first", v)
    assert d.pred.tolist() == [A] and d.nfe.tolist() == [3 * 8]
    assert rule("halt_first_max_q", v).pred.tolist() == [B]


def test_top1_converged_picks_the_smallest_logit_change_and_the_paper_form_the_smallest_residual():
    v = view([A, B, C], residual=[0.3, 0.1, float("nan")], logit_residual=[0.05, 0.2, 0.9])
    assert rule("top1_converged", v).pred.tolist() == [A]  # EqR's code: the logits' change
    assert rule("top1_converged_paper", v).pred.tolist() == [B]  # EqR's paper: the latent residual


def test_majority_votes_whole_answers_not_cells():
    # cell-wise votes would give [0, 1, 1], an answer no member has; the puzzle-level vote picks [0, 1, 2]
    v = view([[0, 1, 2], [0, 1, 2], [0, 0, 1], [1, 1, 1], [2, 1, 1]])
    assert rule("majority", v).pred.tolist() == [[0, 1, 2]]


def test_majority_ties_go_to_the_answer_seen_first():
    """EqR evaluators/eval_fn.py:160-165: votes counted in an insertion-ordered dict over the restarts,
    winner = max(votes.items(), key=count): the first answer (in member order) among the most voted."""

    def eqr_majority(preds):
        votes = {}
        for row in preds:
            votes[tuple(row)] = votes.get(tuple(row), 0) + 1
        return list(max(votes.items(), key=lambda item: item[1])[0])

    for preds in ([A, B, B, A], [C, B, B, C], [B, A, C, A, B], [D, C, C, D, A]):
        assert rule("majority", view(preds, q=[0.1, 0.2, 0.9, 0.3, 0.0][:len(preds)])).pred.tolist() == [eqr_majority(preds)]


def test_majority_q_ties_go_to_the_highest_q_then_the_lowest_member():
    assert rule("majority_q", view([A, B, B, A], q=[0.1, 0.2, 0.9, 0.3])).pred.tolist() == [B]
    assert rule("majority_q", view([A, B, B, A], q=[0.5, 0.5, 0.5, 0.5])).pred.tolist() == [A]
    assert rule("majority_q", view([C, B, B, C], q=[0.5, 0.5, 0.5, 0.5])).pred.tolist() == [C]


def test_prob_avg_max_q_last_and_their_nfe():
    probs = torch.tensor([[[[0.6, 0.4, 0.0]] * 3, [[0.0, 0.45, 0.55]] * 3, [[0.0, 0.45, 0.55]] * 3]])
    v = view([A, C, C], probs=probs, q=[0.2, 0.1, 0.9], steps=[5, 7, 8])
    assert rule("prob_avg", v).pred.tolist() == [B]  # mean probabilities: 0.2, 0.43, 0.37
    assert rule("max_q", v).pred.tolist() == [C]
    d = rule("last", v)
    assert d.pred.tolist() == [A] and d.nfe.tolist() == [5]
    assert rule("max_q", v).nfe.tolist() == [20]


def test_oracle_is_right_when_any_member_is():
    v = view([B, C, A], labels=A)
    assert score(rule("oracle", v), v.labels)["exact"].tolist() == [True]
    assert CEILINGS == {"oracle"}


def random_view(g, p=40, m=5, cells=3, vocab=3):
    pred = torch.randint(0, vocab, (p, m, cells), generator=g)
    logits = torch.randn(p, m, cells, vocab, generator=g)
    halt = torch.randint(0, 4, (p, m), generator=g)
    return View(pred=pred, probs=torch.softmax(logits, -1), q=torch.randn(p, m, generator=g),
                steps=torch.randint(1, 9, (p, m), generator=g), halt_step=halt,
                halt_pred=torch.randint(0, vocab, (p, m, cells), generator=g), halt_q=torch.randn(p, m, generator=g),
                residual=torch.rand(p, m, generator=g), logit_residual=torch.rand(p, m, generator=g),
                labels=torch.randint(0, vocab, (p, cells), generator=g))


def test_oracle_bounds_every_rule_on_random_rollouts():
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        v = random_view(g)
        ceiling = score(rule("oracle", v), v.labels)
        for name in SELECTION_RULES.names():
            s = score(rule(name, v), v.labels)
            assert (s["exact"] <= ceiling["exact"]).all(), name
            assert (s["cells"] <= ceiling["cells"] + 1e-6).all(), name


@pytest.mark.parametrize("name", SELECTION_RULES.names())
def test_every_rule_is_a_pure_function_of_the_view(name):
    v = random_view(torch.Generator().manual_seed(1))
    before = {k: getattr(v, k).clone() for k in View.__dataclass_fields__}
    a, b = rule(name, v), rule(name, v)
    assert a.pred.shape == v.labels.shape and a.nfe.shape == (v.labels.shape[0],)
    assert torch.equal(a.pred, b.pred) and torch.equal(a.nfe, b.nfe)
    assert (a.nfe > 0).all()
    for k, t in before.items():
        assert torch.equal(getattr(v, k), t), f"{name} changed view.{k}"


def test_unknown_rule_gets_did_you_mean():
    with pytest.raises(ConfigError, match="--select must name a selection rule .* but got 'halt_frist' .*did you mean 'halt_first'"):
        SELECTION_RULES.get("halt_frist")


def test_path_independence_and_selection_failures():
    # 2 puzzles, one family of 4 restarts: exactness [1,1,0,0] and [0,0,0,0]
    labels = torch.zeros(2, 3, dtype=torch.long)
    pred = torch.tensor([[A, A, B, B], [B, B, B, B]])
    v = view([A] * 4)
    v.pred, v.labels = pred, labels
    assert diag.delta_pi(v, 4) == pytest.approx((abs(0.5 - 1) + 0) / 2)
    assert diag.delta_pi(v, 2) == pytest.approx(0.0)  # breadth 2 = two families of 2 restarts
    assert diag.member_average(v) == pytest.approx(2 / 8)
    rule_exact, oracle_exact = torch.tensor([False, False, True]), torch.tensor([True, False, True])
    assert diag.selection_failure_share(rule_exact, oracle_exact) == pytest.approx(0.5)
