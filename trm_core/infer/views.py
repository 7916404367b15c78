"""From rollout records to selection views: one depth budget, one breadth, every member of a puzzle.

Members are ordered checkpoint-major, then transform, then restart; a breadth b < B keeps restarts
0..b-1 (a prefix: restarts are independent, so this is exactly a rollout of breadth b).

Two readings of a record at depth d: `halted=False` takes every member's state at step d (the
full-depth rollout); `halted=True` takes a member's state at its first halt when it halted by d
(halting is final: the ACT queue's reading; a rollout with ACT can only be read this way).
"""

from __future__ import annotations

from typing import Sequence

import torch

from trm_core.infer.rollout import Record, States
from trm_core.infer.selection import View


def _by_member(x: torch.Tensor, rec: Record, breadth: int) -> torch.Tensor:
    """(R, ...) rows -> (N, T * breadth, ...) members of each puzzle."""
    lay = rec.layout
    x = x.reshape(lay.n_transforms, lay.n_restarts, lay.n_puzzles, *x.shape[1:])[:, :breadth]
    x = x.movedim(2, 0)
    return x.reshape(lay.n_puzzles, lay.n_transforms * breadth, *x.shape[3:])


def state_at(rec: Record, depth: int, halted: bool) -> tuple[States, torch.Tensor]:
    """Every row's state at `depth` (and its first halt step within it, 0 if none)."""
    if depth not in rec.snapshots:
        raise ValueError(f"depth {depth} was not recorded (snapshots: {sorted(rec.snapshots)})")
    if rec.act and not halted:
        raise ValueError("an ACT rollout stops rows at their halt: read it with halted=True")
    snap = rec.snapshots[depth]
    halt_step = torch.where(rec.halt_step <= depth, rec.halt_step, torch.zeros_like(rec.halt_step))
    if not halted:
        return snap, halt_step
    use = halt_step > 0
    fields = {}
    for name in ("pred", "probs", "q", "steps", "residual", "logit_residual"):
        a, b = getattr(rec.halted, name), getattr(snap, name)
        m = use.view(-1, *([1] * (a.dim() - 1)))
        fields[name] = torch.where(m, a, b)
    return States(**fields), halt_step


def build_view(records: Sequence[Record], labels: torch.Tensor, depth: int, breadth: int, halted: bool) -> View:
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in View.__dataclass_fields__ if k != "labels"}
    for rec in records:
        st, halt_step = state_at(rec, depth, halted)
        h = rec.halted
        fields = {"pred": st.pred.long(), "probs": st.probs, "q": st.q, "steps": st.steps.long(),
                  "halt_step": halt_step.long(), "halt_pred": h.pred.long(), "halt_q": h.q,
                  "residual": st.residual, "logit_residual": st.logit_residual}
        for k, v in fields.items():
            parts[k].append(_by_member(v, rec, breadth))
    return View(**{k: torch.cat(v, dim=1) for k, v in parts.items()}, labels=labels.long())


def member_exact(view: View) -> torch.Tensor:
    """(P, M) bool: each member's answer is exactly right."""
    return (view.pred == view.labels[:, None]).all(-1)
