"""train.compile: the compiled block stack trains exactly as the eager one does (to float rounding)."""

import json
import shutil

import pytest
import torch

from trm_core.config import load_config
from trm_core.train.loop import train

TINY = ["data.n_train=200", "data.n_test=24", "model.hidden_size=32", "train.batch_size=8", "train.steps=6",
        "train.eval_interval=3", "train.log_interval=1", "recursion.n_supervision=3", "device=cpu",
        "recursion.halt_exploration_prob=0.5", "train.cpu_threads=1"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler (g++)")
def test_compiled_step_gives_the_eager_losses(tmp_path):
    """Same seed, six steps (refills, halting, two evaluations): every logged loss of the compiled
    run equals the eager run's to float tolerance, and the compiled run really used the compiled f."""
    from torch._inductor import config as inductor_config

    counts = torch._dynamo.utils.counters
    counts.clear()
    with inductor_config.patch(compile_threads=1):  # no compile-worker pool left behind in the test process
        for run, compiled in (("eager", "false"), ("compiled", "true")):
            train(load_config("sudoku4_tiny", TINY + ["optim.ema_decay=0", f"train.compile={compiled}"]), out_dir=tmp_path / run)
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
