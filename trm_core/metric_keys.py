"""Every metric key the trainer and the test-time engine report, in one place.

Reports, Aim queries and a sweep's `metric:` depend on these names (README, "Metric keys"). A key
is exact (`eval/exact_acc`) or a pattern with one placeholder part:

  train/win_rate/<k>          k: a chain index (recursion.chains > 1)
  eval_tts/<rule>/<leaf>      rule: a selection rule (`trm_core.infer.selection.SELECTION_RULES`),
                              leaf: exact_acc, cell_acc, avg_nfe, selection_failures

Rule names are read from the registry when a key is checked, never copied here, so a renamed or
added rule needs no change in this file. `check(key)` returns a sentence saying why a key is not
one the trainer reports (with a "did you mean"), or None; the sweeper calls it on every objective of
`metric:` before Ray starts, so a typo costs one line, not a sweep.

Cost keys (`COST_KEYS`, reported at every evaluation and cumulative over resumes): `cost/train_s`
(seconds inside training steps), `cost/train_flops` (analytic training FLOPs at each step's depth),
`cost/gpu_s` (wall seconds x the run's GPU share). They make accuracy-vs-cost searches possible:
`metric: [eval/exact_acc, cost/train_s]` with `mode: [max, min]`.
"""

from __future__ import annotations

import re

from trm_core.errors import did_you_mean

EVAL_LEAVES = ("exact_acc", "cell_acc", "halted_exact_acc", "halted_cell_acc", "avg_steps", "halt_acc", "n_puzzles")
"""trm_core.train.evaluate: each comes as `eval/<leaf>` (periodic) and `final/<leaf>` (the last evaluation)."""

TRAIN_KEYS = ("train/loss", "train/lm_loss", "train/halt_loss", "train/cell_acc", "train/exact_acc",
              "train/halted_exact_acc", "train/avg_steps", "train/lr", "train/grad_norm", "train/n_inner",
              "train/n_outer", "train/n_supervision", "train/winner_ce", "train/mean_ce", "train/chain_cos",
              "train/expunged", "train/live_chains", "train/fp_iters", "train/fp_residual")
"""trm_core.train.loop.TrainStats (chain keys only with chains > 1, fp_* only with the fixed-point solver)."""

OTHER_KEYS = ("step", "perf/puzzle_steps_per_s", "time/elapsed_s", "time/stop_grace_s", "model/n_params")

COST_KEYS = ("cost/train_s", "cost/train_flops", "cost/gpu_s")
"""trm_core.train.loop (at every evaluation, cumulative over resumes): wall seconds inside training
steps (<= time/elapsed_s); analytic training FLOPs, per step rows (puzzles x chains) x
TRM.flops_per_puzzle_step(n, T, training=True) at that step's depth; time/elapsed_s x the run's GPU
share (a sweep's resources.gpu; 0 on a CPU). A sweep may search on them next to an accuracy:
`metric: [eval/exact_acc, cost/train_s]`, `mode: [max, min]` (search_spaces/README.md)."""

TTS_KEYS = ("eval_tts/depth", "eval_tts/breadth", "eval_tts/n_puzzles", "eval_tts/wall_s", "eval_tts/members",
            "eval_tts/delta_pi", "eval_tts/member_avg_exact_acc")
"""trm_core.infer.engine.flat_metrics, reported only by a sweep with a `final_eval` section."""

TTS_RULE_LEAVES = ("exact_acc", "cell_acc", "avg_nfe", "selection_failures")

EXACT_KEYS = (OTHER_KEYS + COST_KEYS + TRAIN_KEYS + tuple(f"eval/{leaf}" for leaf in EVAL_LEAVES)
              + tuple(f"final/{leaf}" for leaf in EVAL_LEAVES) + TTS_KEYS)

_WIN_RATE = re.compile(r"train/win_rate/(?P<k>\d+)")
_TTS_RULE = re.compile(r"eval_tts/(?P<rule>[^/]+)/(?P<leaf>[^/]+)")
EXAMPLES_PER_PATTERN = 8
"""Chain indices offered as suggestions (train/win_rate/0 .. /7)."""


def rule_names() -> list[str]:
    """The selection rules of the test-time engine (imported here, late: it pulls in torch)."""
    from trm_core.infer.selection import SELECTION_RULES

    return list(SELECTION_RULES.names())


def tts_rule(key: str) -> str | None:
    """The rule part of `eval_tts/<rule>/<leaf>`, or None for any other key."""
    m = _TTS_RULE.fullmatch(key)
    return m["rule"] if m else None


def needs_final_eval(key: str) -> bool:
    """Reported only after training, by the test-time engine (a sweep's `final_eval`)."""
    return key.startswith("eval_tts/")


CHAIN_KEYS = ("train/winner_ce", "train/mean_ce", "train/chain_cos", "train/expunged", "train/live_chains")


def chains_needed(key: str) -> int:
    """The recursion.chains a run needs to report `key` (1: any run)."""
    m = _WIN_RATE.fullmatch(key)
    if m:
        return max(2, int(m["k"]) + 1)
    return 2 if key in CHAIN_KEYS else 1


def known_keys() -> list[str]:
    """Exact keys and every pattern key spelled out (chain indices 0-7, every rule): the candidates of
    a "did you mean"."""
    rules = rule_names()
    return (list(EXACT_KEYS) + [f"train/win_rate/{k}" for k in range(EXAMPLES_PER_PATTERN)]
            + [f"eval_tts/{r}/{leaf}" for r in rules for leaf in TTS_RULE_LEAVES])


def is_known(key: str) -> bool:
    if key in EXACT_KEYS or _WIN_RATE.fullmatch(key):
        return True
    m = _TTS_RULE.fullmatch(key)
    return bool(m) and m["leaf"] in TTS_RULE_LEAVES and m["rule"] in rule_names()


def check(key: str) -> str | None:
    """None when the trainer (or the engine) reports `key`; else why not, with the closest known key."""
    if is_known(key):
        return None
    m = _TTS_RULE.fullmatch(key)
    if m and m["leaf"] in TTS_RULE_LEAVES:
        rules = rule_names()
        return (f"names selection rule {m['rule']!r}, which does not exist (rules: {', '.join(rules)})"
                f"{did_you_mean(m['rule'], rules)}")
    examples = "eval/exact_acc, eval/halted_exact_acc, final/exact_acc, train/loss, cost/train_s, eval_tts/<rule>/exact_acc"
    return (f"must be a metric key the trainer reports (e.g. {examples}; all: README, 'Metric keys'),"
            f" but got {key!r}{did_you_mean(key, known_keys())}")
