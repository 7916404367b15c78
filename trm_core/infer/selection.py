"""Selection rules: `SELECTION_RULES` maps a name to a small pure function `rule(view) -> Decision`.

A `View` is one rollout seen at one depth budget and breadth: for every puzzle, its M members
(checkpoints x transforms x restarts, member 0 = first checkpoint, first transform, restart 0),
each with its answer (mapped back to the puzzle's space), token probabilities, q_halt, the steps it
ran, its first halt within the budget and its residuals. A rule returns each puzzle's answer and
the supervision steps it needs (NFE: summed over the members the rule reads). Only `oracle`
reads the labels: it is the ceiling, not a deployable rule.

- last: member 0's answer (TRM: one model, the last step it ran).
- halt_first (SIC): the member that halted first (q_halt > 0); same-step ties go to the larger
  q_halt, then to the lower member index; its answer at that step. None halted within the budget:
  member 0's answer at its last step (SIC, jvdillon/sic code/experiment.py:1274-1278).
  halt_first_max_q falls back to the member with the highest q_halt instead. NFE: M x the first
  halt step (a halt-first ensemble stops every member there), or M x the budget when none halted.
- prob_avg: cell-wise argmax of the members' mean token probabilities (SIC's baseline).
- majority (EqR): puzzle-level vote over the members' whole answers; ties go to the answer seen
  first in member order (EqR's max over an insertion-ordered dict, locuslab/EqR
  evaluators/eval_fn.py:160-165). majority_q breaks ties by the highest q_halt among each answer's
  voters, then the lowest member index.
- top1_converged (EqR's code, eval_fn.py:367-373): the member whose logits changed least over its
  last L steps: the per-cell L2 norm over the vocabulary of the step-to-step change, averaged over
  the cells and the L steps. top1_converged_paper (EqR's paper, App. D.3): the member with the
  smallest residual of one outer iteration, ||z_t - z_{t-1}|| of the whole carry (z_H, z_L),
  averaged over its last L steps.
- max_q: the member with the highest q_halt at its last step.
- oracle: right when any answer a rule could give is right: a member's answer at its last step
  or at its first halt, or the averaged answer (else the candidate with the best cell accuracy).
  An upper bound of every rule here, labelled as the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from trm_core.registry import Registry


@dataclass
class View:
    pred: torch.Tensor
    """(P, M, cells) long: each member's answer, in the puzzle's space."""
    probs: torch.Tensor
    """(P, M, cells, vocab) float: each member's token probabilities."""
    q: torch.Tensor
    """(P, M) q_halt at the member's last step."""
    steps: torch.Tensor
    """(P, M) supervision steps the member ran."""
    halt_step: torch.Tensor
    """(P, M) long: the member's first step with q_halt > 0 within the budget; 0 if none."""
    halt_pred: torch.Tensor
    """(P, M, cells) long: its answer at that step."""
    halt_q: torch.Tensor
    """(P, M) its q_halt at that step."""
    residual: torch.Tensor
    """(P, M) mean over the member's last L steps of ||z_t - z_{t-1}|| (whole carry; EqR's paper)."""
    logit_residual: torch.Tensor
    """(P, M) mean over its last L steps of the logits' change, per-cell L2 averaged over cells (EqR's code)."""
    labels: torch.Tensor
    """(P, cells) long; read by `oracle` only."""


@dataclass
class Decision:
    pred: torch.Tensor
    """(P, cells) long: each puzzle's answer."""
    nfe: torch.Tensor
    """(P,) float: supervision steps the rule needs, summed over the members it reads."""


Rule = Callable[[View], Decision]
SELECTION_RULES: Registry[Rule] = Registry("selection rule", "--select")
CEILINGS = {"oracle"}
"""Rules that read the labels: upper bounds, never deployable."""


def _members(view: View, member: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """field (P, M, ...) -> (P, ...) at each puzzle's chosen member (P,)."""
    return field[torch.arange(field.shape[0]), member]


def _all_steps(view: View) -> torch.Tensor:
    return view.steps.float().sum(1)


def _pick(view: View, member: torch.Tensor) -> Decision:
    return Decision(_members(view, member, view.pred), _all_steps(view))


@SELECTION_RULES.register("last")
def last(view: View) -> Decision:
    return Decision(view.pred[:, 0], view.steps[:, 0].float())


def _halt_first(view: View, fallback: torch.Tensor) -> Decision:
    """The first member to halt (ties: larger q_halt, then lower index); `fallback` (P,) members when none did."""
    inf = torch.tensor(float("inf"))
    when = torch.where(view.halt_step > 0, view.halt_step.float(), inf)
    first = when.min(1).values
    any_halted = torch.isfinite(first)
    # among the members that halted first, the largest q_halt (argmax keeps the lowest index on ties)
    tied_q = torch.where(when == first[:, None], view.halt_q, -inf)
    by_halt = tied_q.argmax(1)
    pred = torch.where(any_halted[:, None], _members(view, by_halt, view.halt_pred), _members(view, fallback, view.pred))
    m = view.pred.shape[1]
    nfe = m * torch.where(any_halted, first, view.steps.max(1).values.float())
    return Decision(pred, nfe)


@SELECTION_RULES.register("halt_first")
def halt_first(view: View) -> Decision:
    return _halt_first(view, torch.zeros(view.pred.shape[0], dtype=torch.long))


@SELECTION_RULES.register("halt_first_max_q", default=False)
def halt_first_max_q(view: View) -> Decision:
    return _halt_first(view, view.q.argmax(1))


@SELECTION_RULES.register("prob_avg")
def prob_avg(view: View) -> Decision:
    return Decision(view.probs.float().mean(1).argmax(-1), _all_steps(view))


@SELECTION_RULES.register("majority")
def majority(view: View) -> Decision:
    chosen = torch.empty(view.pred.shape[0], dtype=torch.long)
    for i in range(view.pred.shape[0]):
        _, which, votes = torch.unique(view.pred[i], dim=0, return_inverse=True, return_counts=True)
        # the first member (in member order) whose answer has the most votes: the answer seen first
        chosen[i] = int(torch.nonzero(votes[which] == votes.max()).min())
    return _pick(view, chosen)


@SELECTION_RULES.register("majority_q", default=False)
def majority_q(view: View) -> Decision:
    chosen = torch.empty(view.pred.shape[0], dtype=torch.long)
    for i in range(view.pred.shape[0]):
        boards, which, votes = torch.unique(view.pred[i], dim=0, return_inverse=True, return_counts=True)
        # the best q_halt among each distinct answer's voters breaks ties between equal vote counts
        best_q = torch.full((boards.shape[0],), -float("inf")).scatter_reduce(0, which, view.q[i].float(), "amax")
        top = (votes == votes.max()) & (best_q == best_q[votes == votes.max()].max())
        # the lowest member index among the winning answer's voters
        chosen[i] = int(torch.nonzero(top[which]).min())
    return _pick(view, chosen)


def _smallest(values: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(values.float(), nan=float("inf")).argmin(1)


@SELECTION_RULES.register("top1_converged")
def top1_converged(view: View) -> Decision:
    return _pick(view, _smallest(view.logit_residual))


@SELECTION_RULES.register("top1_converged_paper")
def top1_converged_paper(view: View) -> Decision:
    return _pick(view, _smallest(view.residual))


@SELECTION_RULES.register("max_q")
def max_q(view: View) -> Decision:
    return _pick(view, view.q.argmax(1))


@SELECTION_RULES.register("oracle")
def oracle(view: View) -> Decision:
    halted = torch.where((view.halt_step > 0)[..., None], view.halt_pred, view.pred)
    candidates = torch.cat([view.pred, halted, prob_avg(view).pred[:, None]], dim=1)
    correct = candidates == view.labels[:, None]
    exact, cells = correct.all(-1), correct.float().mean(-1)
    best = torch.where(exact.any(1), exact.float().argmax(1), cells.argmax(1))
    return Decision(candidates[torch.arange(candidates.shape[0]), best], _all_steps(view))


def score(decision: Decision, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per puzzle: exact (P,) bool, cells (P,) cell accuracy."""
    correct = decision.pred == labels
    return {"exact": correct.all(-1), "cells": correct.float().mean(-1)}
