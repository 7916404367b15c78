"""The trainer's cost metrics (issue 27): cost/train_s, cost/train_flops and cost/gpu_s at every
evaluation, cumulative over resumes, and what an old checkpoint without them does.

The FLOPs are checked against a count written here from the model's weight shapes (a matmul of r
rows through a (out, in) weight is 2 r out in FLOPs), not against the trainer's own accounting."""

from __future__ import annotations

import json

import pytest
import torch

from trm_core import metric_keys
from trm_core.checkpoint import checkpoint_file
from trm_core.model.trm import build_model, task_shape
from trm_core.train import train

COST = ("cost/train_s", "cost/train_flops", "cost/gpu_s")


def flops_from_shapes(cfg, n_inner: int, n_outer: int) -> int:
    """Training FLOPs of one supervision step on one row, from the weights' shapes: a call of the
    network f runs every block once (the token mixer's weights on `width` vectors of length seq, the
    channel MLP's on `seq` vectors of width); the heads read the cells (lm head) and position 0 (q head).
    A step makes T (n + 1) calls and the heads; the backward of the last pass, the one with a graph,
    costs twice its forward."""
    vocab, cells = task_shape(cfg.data)
    model = build_model(cfg, vocab, cells)
    width = cfg.model.hidden_size
    seq = cells + cfg.model.prefix_len + int(cfg.model.halt_register)
    f_call = 0
    for name, w in model.state_dict().items():
        if name.startswith("blocks.") and name.endswith(".weight") and w.ndim == 2:
            rows = width if ".mixer." in name else seq
            f_call += 2 * rows * w.shape[0] * w.shape[1]
    lm, q = model.state_dict()["lm_head.weight"], model.state_dict()["q_head.weight"]
    heads = 2 * cells * lm.shape[0] * lm.shape[1] + 2 * q.shape[0] * q.shape[1]
    return n_outer * (n_inner + 1) * f_call + heads + 2 * ((n_inner + 1) * f_call + heads)


def run(cfg, out_dir=None, **kwargs) -> list[dict]:
    reports: list[dict] = []
    train(cfg, report=lambda m, d: reports.append(m), out_dir=out_dir, **kwargs)
    return reports


def test_the_cost_keys_are_known_metric_keys():
    for key in COST:
        assert metric_keys.check(key) is None, key
    assert "did you mean 'cost/train_s'" in metric_keys.check("cost/train_seconds")


def test_costs_at_every_evaluation_with_a_fixed_depth_and_two_chains(tiny_config):
    cfg = tiny_config("recursion.chains=2")  # 8 puzzles x 2 chains = 16 rows per step
    assert cfg.recursion.depth_schedule == "constant"
    reports = run(cfg)
    assert [r["step"] for r in reports] == [2, 4]
    per_step = 8 * 2 * flops_from_shapes(cfg, cfg.recursion.n_inner, cfg.recursion.n_outer)
    for r in reports:
        assert set(COST) <= set(r)
        assert 0 < r["cost/train_s"] <= r["time/elapsed_s"]
        assert r["cost/train_flops"] == r["step"] * per_step  # steps x rows x FLOPs per row-step
        assert r["cost/gpu_s"] == 0.0  # a CPU run holds no GPU
    assert reports[1]["cost/train_s"] > reports[0]["cost/train_s"]


def test_gpu_seconds_are_wall_seconds_times_the_share(tiny_config):
    reports = run(tiny_config(), gpu_share=0.25)
    for r in reports:
        assert r["cost/gpu_s"] == pytest.approx(0.25 * r["time/elapsed_s"], rel=1e-12) and r["cost/gpu_s"] > 0
    with pytest.raises(ValueError, match="gpu_share"):
        train(tiny_config(), gpu_share=-1.0)


def test_cgar_counts_each_step_at_its_own_depth(tiny_config, tmp_path):
    cfg = tiny_config("recursion.depth_schedule=cgar", "recursion.cgar_stages=0:1x1,0.3:2x1,0.6:2x2",
                      "train.steps=10", "train.eval_interval=10", "train.log_interval=1")
    reports = run(cfg, tmp_path)
    # every log line (log_interval 1) holds the depth its one step used
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    depths = [(int(x["train/n_inner"]), int(x["train/n_outer"])) for x in lines if "eval/exact_acc" not in x]
    assert depths == [(1, 1)] * 3 + [(2, 1)] * 3 + [(2, 2)] * 4, depths  # the stages at 30% and 60%
    expected = sum(8 * flops_from_shapes(cfg, n, t) for n, t in depths)
    assert reports[-1]["cost/train_flops"] == expected
    assert expected < 10 * 8 * flops_from_shapes(cfg, 2, 2)  # cheaper than 10 steps at full depth


def test_costs_continue_after_a_resume(tiny_config, tmp_path):
    cfg = tiny_config()
    per_step = 8 * flops_from_shapes(cfg, cfg.recursion.n_inner, cfg.recursion.n_outer)
    first = run(tiny_config("train.steps=2"), tmp_path / "a")
    ckpt = tmp_path / "a" / "checkpoints" / "step_00000002"
    resumed = run(cfg, tmp_path / "b", resume_from=ckpt, gpu_share=0.5)
    assert [r["step"] for r in resumed] == [4]
    r = resumed[0]
    assert r["cost/train_flops"] == 4 * per_step  # 2 steps before the resume + 2 after, not 2
    assert r["cost/train_s"] > first[-1]["cost/train_s"]  # went on from the checkpoint's seconds
    assert r["cost/train_s"] <= r["time/elapsed_s"]
    assert r["cost/gpu_s"] == pytest.approx(0.5 * r["time/elapsed_s"], rel=1e-12)
    assert r["time/elapsed_s"] > first[-1]["time/elapsed_s"]  # gpu_s rides on the cumulative clock

    # a checkpoint from before the cost counters: it resumes; they count from the resumed step on
    payload = torch.load(checkpoint_file(ckpt), weights_only=True)
    assert payload["train_s"] == first[-1]["cost/train_s"] and payload["train_flops"] == 2 * per_step
    del payload["train_s"], payload["train_flops"]
    torch.save(payload, checkpoint_file(ckpt))
    old = run(cfg, tmp_path / "c", resume_from=ckpt)
    assert old[-1]["step"] == 4 and old[-1]["cost/train_flops"] == 2 * per_step
    assert 0 < old[-1]["cost/train_s"] <= old[-1]["time/elapsed_s"]
