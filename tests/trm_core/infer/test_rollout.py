"""The rollout queue: breadth in one batch = separate runs, layout-free results, ACT = full depth where
halting is final (with fewer steps), and the engine's numbers against the trainer's evaluation."""

import pytest
import torch

from trm_core.infer.engine import InferSpec, rollout, run
from trm_core.infer.members import load_members, member_inputs
from trm_core.infer.rollout import Layout, Settings
from trm_core.infer.selection import SELECTION_RULES, score
from trm_core.infer.transforms import build_transforms
from trm_core.infer.views import build_view, state_at
from trm_core.train.evaluate_checkpoint import evaluate_checkpoint

N = 12


def setup(ckpt, transforms="identity,digits"):
    loaded, eval_set, task = load_members([ckpt], ["train.cpu_threads=1"], limit=N)
    members = member_inputs(eval_set, build_transforms(transforms, task, seed=0), torch.device("cpu"))
    labels = torch.as_tensor(eval_set.labels.astype("int64"))
    return loaded[0], members, labels


def roll(ld, members, breadth, depth=6, snapshots=(3, 6), act=False, max_batch=1000, first=0, seed=0):
    layout = Layout(0, members.inputs.shape[0], breadth, members.inputs.shape[1], first)
    return rollout(ld, members, layout, Settings(depth, snapshots, act, max_batch, seed=seed))


def rows_of(rec, restart):
    """Row indices of one restart (in every transform) of a record."""
    lay = rec.layout
    return torch.tensor([(t * lay.n_restarts + restart) * lay.n_puzzles + p
                         for t in range(lay.n_transforms) for p in range(lay.n_puzzles)])


def assert_same_rows(a, rows_a, b, rows_b, depths=(3, 6)):
    for d in depths:
        sa, sb = a.snapshots[d], b.snapshots[d]
        assert torch.equal(sa.pred[rows_a], sb.pred[rows_b]), d
        torch.testing.assert_close(sa.q[rows_a], sb.q[rows_b], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(sa.residual[rows_a], sb.residual[rows_b], atol=1e-4, rtol=1e-3)
    assert torch.equal(a.halt_step[rows_a], b.halt_step[rows_b])


def test_breadth_in_one_batch_equals_separate_runs_of_each_restart(checkpoints):
    ld, members, _ = setup(checkpoints["noisy"])
    together = roll(ld, members, breadth=3)
    for r in range(3):
        alone = roll(ld, members, breadth=1, first=r)
        assert_same_rows(together, rows_of(together, r), alone, rows_of(alone, 0))
    # the restarts really differ (random init and path noise)
    preds = [together.snapshots[6].q[rows_of(together, r)] for r in range(3)]
    assert not torch.allclose(preds[0], preds[1])


def test_results_do_not_depend_on_the_queue_size(checkpoints):
    ld, members, _ = setup(checkpoints["noisy"])
    big, small = roll(ld, members, breadth=2), roll(ld, members, breadth=2, max_batch=5)
    rows = torch.arange(big.layout.n_rows)
    assert_same_rows(big, rows, small, rows)
    assert big.row_steps == small.row_steps == big.layout.n_rows * 6


def test_seeds_give_different_restarts_and_the_same_seed_the_same_numbers(checkpoints):
    ld, members, _ = setup(checkpoints["noisy"])
    a, b, c = roll(ld, members, 1), roll(ld, members, 1), roll(ld, members, 1, seed=5)
    assert torch.equal(a.snapshots[6].q, b.snapshots[6].q)
    assert not torch.equal(a.snapshots[6].q, c.snapshots[6].q)


@pytest.mark.parametrize("name", ["noisy", "plain"])
def test_act_queue_matches_full_depth_where_halting_is_final(checkpoints, name):
    ld, members, labels = setup(checkpoints[name])
    depths = (2, 4, 8)
    full = roll(ld, members, 2, depth=8, snapshots=depths)
    act = roll(ld, members, 2, depth=8, snapshots=depths, act=True, max_batch=7)
    halted = full.halt_step > 0
    assert 0 < int(halted.sum()) < full.layout.n_rows  # some rows halt, some run to the end
    assert torch.equal(full.halt_step, act.halt_step)
    for d in depths:
        f, _ = state_at(full, d, halted=True)
        a, _ = state_at(act, d, halted=True)
        assert torch.equal(f.pred, a.pred) and torch.equal(f.steps, a.steps), d
        torch.testing.assert_close(f.q, a.q, atol=1e-4, rtol=1e-4)
        fv, av = build_view([full], labels, d, 2, halted=True), build_view([act], labels, d, 2, halted=True)
        for rule in SELECTION_RULES.names():
            sf, sa = score(SELECTION_RULES.get(rule)(fv), labels), score(SELECTION_RULES.get(rule)(av), labels)
            assert torch.equal(sf["exact"], sa["exact"]), (rule, d)
    # the queue spends fewer steps: each row stops at its first halt
    expected = int(torch.where(halted, full.halt_step, torch.full_like(full.halt_step, 8)).sum())
    assert act.row_steps == expected < full.row_steps


def test_one_member_at_the_trained_depth_is_the_trainers_evaluation(checkpoints):
    ckpt = checkpoints["plain"]  # fixed init, no noise: nothing random anywhere
    trainer = evaluate_checkpoint(ckpt, ["train.cpu_threads=1"], limit=N)
    full = run([ckpt], InferSpec(select=("last",)), ["train.cpu_threads=1"], limit=N)
    halted = run([ckpt], InferSpec(select=("last",), act=True), ["train.cpu_threads=1"], limit=N)
    assert full.rows[0]["exact_acc"] == pytest.approx(trainer["eval/exact_acc"])
    assert full.rows[0]["cell_acc"] == pytest.approx(trainer["eval/cell_acc"])
    assert halted.rows[0]["exact_acc"] == pytest.approx(trainer["eval/halted_exact_acc"])
    assert halted.rows[0]["avg_nfe"] == pytest.approx(trainer["eval/avg_steps"])


def test_engine_reads_one_rollout_at_every_depth_and_breadth(checkpoints):
    ckpts = [checkpoints["noisy"], checkpoints["plain"]]
    spec = InferSpec(depths=(2, 4), breadths=(1, 2), transforms="identity,transpose", aas=True)
    result = run(ckpts, spec, ["train.cpu_threads=1"], limit=8)
    assert len(result.rows) == 2 * 2 * len(spec.select)
    by = {(r["depth"], r["breadth"], r["rule"]): r for r in result.rows}
    for (d, b, rule), r in by.items():
        assert r["exact_acc"] <= by[(d, b, "oracle")]["exact_acc"] + 1e-9, rule
        members = 2 * 2 * b
        if rule in ("prob_avg", "majority", "oracle"):
            assert r["avg_nfe"] == pytest.approx(members * d)  # no ACT: every member runs d steps
    assert by[(4, 1, "last")]["exact_acc"] == by[(4, 2, "last")]["exact_acc"]  # restart 0 is in both
    assert by[(4, 1, "halt_first")]["avg_nfe"] <= 4 * 4
    views = {(v["depth"], v["breadth"]): v for v in result.diagnostics["views"]}
    assert views[(4, 1)]["delta_pi"] == 0 and views[(4, 2)]["members"] == 8
    assert len(views[(4, 2)]["checkpoint_exact_acc"]) == 2
    assert result.metrics["eval_tts/halt_first/exact_acc"] == by[(4, 2, "halt_first")]["exact_acc"]
    assert {"eval_tts/oracle/avg_nfe", "eval_tts/delta_pi", "eval_tts/n_puzzles"} <= set(result.metrics)
    assert len(result.diagnostics["aas"]) == 2 and all(-1 <= a["z_l_cosine"] <= 1 for a in result.diagnostics["aas"])
    h = result.diagnostics["halting"]
    assert h["never"] + sum(h["counts"]) == 2 * 2 * 2 * 8  # every row of both checkpoints
    assert any("fixed initial latents" in n for n in result.notes)  # the plain checkpoint's restarts repeat
    assert result.diagnostics["row_steps_run"] == 2 * 2 * 2 * 8 * 4


def test_convergence_scores_are_eqrs_formulas(checkpoints):
    """The two scores the top-1-converged rules read, against EqR written out on the same trajectory:
    its code's selection score (locuslab/EqR evaluators/eval_fn.py:367-373: the step-to-step logit deltas,
    the last `window` of them, L2 over the vocabulary, mean over those steps and the cells) and its paper's
    residual (App. D.3: the mean over the last L steps of ||f(z_t) - z_t||, one outer iteration, here the
    change of the whole carry (z_H, z_L) as eval_fn.py:351-354 measures it)."""
    ld, members, _ = setup(checkpoints["plain"], "identity")
    depth, window = 5, 3
    rec = rollout(ld, members, Layout(0, 1, 1, N), Settings(depth, (depth,), window=window))
    model, x = ld.model, members.inputs[0]
    carry = model.eval_carry(N)
    hidden, logits = [torch.cat((carry.z_h, carry.z_l), dim=1)], []
    with torch.no_grad(), ld.autocast():  # the checkpoint's precision, as the rollout runs it
        for _ in range(depth):
            out = model(carry, x, ld.cfg.recursion.n_inner, ld.cfg.recursion.n_outer, puzzle_ids=members.puzzle_ids)
            carry = out.carry
            hidden.append(torch.cat((carry.z_h, carry.z_l), dim=1))
            logits.append(out.logits.float())
    deltas = torch.stack(logits)[1:] - torch.stack(logits)[:-1]
    deltas = deltas[-window:] if window < deltas.shape[0] else deltas
    code_score = deltas.norm(dim=-1).mean(dim=(0, -1))
    residuals = [(cur - prev).flatten(start_dim=1).to(torch.float32).norm(dim=1) for prev, cur in zip(hidden, hidden[1:])]
    paper_score = torch.stack(residuals[-window:]).mean(0)
    snap = rec.snapshots[depth]
    torch.testing.assert_close(snap.logit_residual, code_score, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(snap.residual, paper_score, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(code_score, paper_score)  # two different scores, not one under two names


def test_ensemble_size_rows_equal_runs_of_the_first_m_checkpoints_alone(checkpoints):
    """run(..., prefixes=True) reads the first m checkpoints of one rollout (the sweeper's accuracy vs
    ensemble size): each m's rows must be what the engine gives those m checkpoints on their own."""
    ckpts = [checkpoints["plain"], checkpoints["noisy"], checkpoints["plain_trained_head"]]
    spec = InferSpec(depths=(2, 4), breadths=(1, 2), transforms="identity,digits",
                     select=("last", "halt_first", "prob_avg", "majority", "top1_converged", "oracle"))
    whole = run(ckpts, spec, ["train.cpu_threads=1"], limit=8, prefixes=True)
    keys = ("depth", "breadth", "rule", "exact_acc", "cell_acc", "avg_nfe", "selection_failures")
    for m in (1, 2, 3):
        alone = run(ckpts[:m], spec, ["train.cpu_threads=1"], limit=8)
        mine = [r for r in whole.by_checkpoints if r["checkpoints"] == m]
        assert [{k: r[k] for k in keys} for r in mine] == [{k: r[k] for k in keys} for r in alone.rows], m
        assert {r["members"] for r in mine if r["breadth"] == 2} == {m * 2 * 2}
    assert "by_checkpoints" in whole.to_json() and "by_checkpoints" not in run(ckpts[:1], spec, limit=8).to_json()
