"""The metric keys a sweep may name (trm_core.metric_keys) against what the trainer and the test-time
engine really report (issue 26 item 2: a mistyped `metric:` trained a whole sweep for nothing)."""

from __future__ import annotations

import pytest

from sweeper.run.trainable import final_eval_metrics
from trm_core import metric_keys
from trm_core.infer.selection import SELECTION_RULES
from trm_core.train import train


@pytest.fixture(scope="module")
def reported(tmp_path_factory, tiny_config):
    """Every key a real run reports (K = 2 chains: the chain keys too), and the engine's keys on its checkpoint."""
    keys: set[str] = set()
    checkpoints: list[str] = []

    def report(metrics, checkpoint_dir=None):
        keys.update(metrics)
        checkpoints.append(checkpoint_dir)

    train(tiny_config("recursion.chains=2", "optim.warmup_steps=0"), report=report,
          out_dir=tmp_path_factory.mktemp("run"))
    rules = SELECTION_RULES.names()[:2]
    tts = final_eval_metrics(checkpoints[-1], {"depth": 2, "select": rules, "limit": 4})
    return keys, {k for k in tts if k != "eval_tts_figures"}, rules


def test_every_key_a_run_reports_is_known(reported):
    keys, tts, rules = reported
    assert {"train/win_rate/0", "train/win_rate/1", "train/winner_ce", "final/exact_acc"} <= keys
    unknown = sorted(k for k in keys | tts if not metric_keys.is_known(k))
    assert not unknown, f"reported but not in trm_core/metric_keys.py: {unknown}"
    assert {f"eval_tts/{rules[0]}/exact_acc", "eval_tts/delta_pi"} <= tts


@pytest.mark.parametrize("typo, close", [("eval/exact_accuracy", "eval/exact_acc"), ("eval/halted_exact", "eval/halted_exact_acc"),
                                         ("train/los", "train/loss"), ("final/exact", "final/exact_acc")])
def test_a_typo_is_refused_with_the_closest_key(typo, close):
    assert f"(did you mean '{close}'?)" in metric_keys.check(typo)


def test_rule_names_come_from_the_registry():
    rule = SELECTION_RULES.names()[-1]
    assert metric_keys.check(f"eval_tts/{rule}/avg_nfe") is None
    assert "which does not exist" in metric_keys.check(f"eval_tts/{rule}_x/avg_nfe")
    assert metric_keys.chains_needed("train/win_rate/3") == 4 and metric_keys.chains_needed("eval/exact_acc") == 1
