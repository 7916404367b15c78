"""One checkpoint's rollout: every (transform, restart, puzzle) row, D supervision steps, one queue.

Rows: with T transforms, B restarts and N puzzles, row `(t * B + r) * N + p` is puzzle p seen
through transform t, restart r. The model is chain-agnostic (rows never interact), so rows run in
any batch layout: a fixed-size queue of at most `max_batch` rows steps them together; a row that
is done leaves its slot, and the next row takes it before the next step. A row is done at depth
D, or, with ACT, at its first step with q_halt > 0 (its decision is final: it never changes after).

Randomness is per row, so a row's trajectory does not depend on the batch it runs in: row
(c, t, r, p) draws its initial latents from its own `init` generator and its path noise from its
own `noise` generator (trm_core.rng.derive_seed of the engine seed and the row's key; one
(calls_per_step, seq, width) block per step). So B restarts in one batch give exactly what B
separate runs give, a smaller breadth is a prefix of a larger one, and ACT and full-depth runs
give the same trajectory up to a row's halt. Restart 0 starts as the trainer's evaluation does
(`model.eval_carry`: the fixed buffers for TRM's and SIC's inits, a draw for EqR's); restart r >= 1
starts like chain r mod K of a training refill (its fixed buffer, or a draw of its init rule).

What is recorded (`Record`), per row, in the puzzle's own space (answers mapped back through the
transform's inverse): the state at each snapshot depth and at the first halt (answer, token
probabilities, q_halt, steps run, and two convergence scores averaged over the last `window`
steps: the residual of one outer iteration, ||z_t - z_{t-1}|| over the whole carry (z_H, z_L),
EqR's paper (App. D.3) and its code's residual metric (locuslab/EqR evaluators/eval_fn.py:351-354);
and the change of the logits between steps, per cell L2 over the vocabulary averaged over the
cells, EqR's code's selection score (eval_fn.py:367-373)); per step and member family, sums of
activity, exactness, cell accuracy, residuals and halting; full residual traces of a few rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from trm_core.model.halting import first_halts, halts
from trm_core.model.latents import Carry
from trm_core.model.outputs import LOG_PROBS
from trm_core.model.trm import TRM, Dynamics
from trm_core.rng import generator

STAT_KEYS = ("active", "exact", "cells", "residual", "logit_residual", "halting")


@dataclass(frozen=True)
class Layout:
    """Where each row of one checkpoint's rollout comes from, and the key of its random streams."""

    checkpoint: int
    n_transforms: int
    n_restarts: int
    n_puzzles: int
    first_restart: int = 0
    prefix: str = "infer"

    @property
    def n_rows(self) -> int:
        return self.n_transforms * self.n_restarts * self.n_puzzles

    @property
    def n_families(self) -> int:
        """(transform, restart) pairs: row `r` belongs to family r // n_puzzles."""
        return self.n_transforms * self.n_restarts

    def split(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """rows -> (transform, restart (0..B-1), puzzle)."""
        family, p = rows // self.n_puzzles, rows % self.n_puzzles
        return family // self.n_restarts, family % self.n_restarts, p

    def key(self, row: int, stream: str) -> str:
        family, p = divmod(row, self.n_puzzles)
        t, r = divmod(family, self.n_restarts)
        return f"{self.prefix}/{stream}/c{self.checkpoint}/t{t}/r{self.first_restart + r}/p{p}"


@dataclass
class Members:
    """What one checkpoint's members see, on the model's device."""

    inputs: torch.Tensor
    """(T, N, cells) long: each transform's view of the puzzles."""
    labels: torch.Tensor
    """(T, N, cells) long: the solutions in the same views (exactness does not change under a bijection)."""
    puzzle_ids: torch.Tensor
    """(N,) long."""
    positions_inv: torch.Tensor
    """(T, cells) long: puzzle cell j is the member's cell positions_inv[t, j]."""
    tokens: torch.Tensor
    """(T, vocab) long: puzzle token v is the member's token tokens[t, v]."""
    tokens_inv: torch.Tensor
    """(T, vocab) long."""

    def to_puzzle_space(self, t: torch.Tensor, pred: torch.Tensor, probs: torch.Tensor):
        """Map answers (k, cells) and probabilities (k, cells, vocab) of rows of transforms t (k,) back."""
        pos = self.positions_inv[t]
        pred = self.tokens_inv[t].gather(1, pred.gather(1, pos))
        v = probs.shape[-1]
        probs = probs.gather(1, pos[:, :, None].expand(-1, -1, v))
        probs = probs.gather(2, self.tokens[t][:, None, :].expand(-1, pos.shape[1], -1))
        return pred, probs


@dataclass
class Settings:
    depth: int
    """D: supervision steps per row (at most)."""
    snapshots: tuple[int, ...]
    """Depths at which every row's state is recorded (D among them)."""
    act: bool = False
    max_batch: int = 4096
    window: int = 3
    """L: the residual window of top1_converged (EqR: the last 3 steps)."""
    seed: int = 0
    noise_beta: Optional[float] = None
    """Test-time beta; None: the checkpoint's evaluation value (recursion.eval_noise_beta / noise_beta)."""
    n_trace: int = 64
    """Rows (transform 0, restart 0, the first puzzles) whose full residual traces are kept."""


@dataclass
class States:
    """One recorded state per row (CPU tensors); NaN / -1 where a row has none."""

    pred: torch.Tensor
    """(R, cells) int16, puzzle space."""
    probs: torch.Tensor
    """(R, cells, vocab) float16, puzzle space."""
    q: torch.Tensor
    """(R,) float32 q_halt."""
    steps: torch.Tensor
    """(R,) int32 supervision steps run."""
    residual: torch.Tensor
    """(R,) mean over the last `window` steps of ||z_t - z_{t-1}|| (the whole carry; EqR's paper)."""
    logit_residual: torch.Tensor
    """(R,) mean over the last `window` steps of the logits' change, per-cell L2 averaged over the
    cells (EqR's code; NaN at step 1)."""

    @staticmethod
    def empty(rows: int, cells: int, vocab: int) -> "States":
        nan = torch.full((rows,), float("nan"))
        return States(torch.full((rows, cells), -1, dtype=torch.int16), torch.zeros(rows, cells, vocab, dtype=torch.float16),
                      nan.clone(), torch.zeros(rows, dtype=torch.int32), nan.clone(), nan.clone())

    def write(self, rows: torch.Tensor, pred, probs, q, steps, residual, logit_residual) -> None:
        rows = rows.cpu()
        self.pred[rows] = pred.to("cpu", torch.int16)
        self.probs[rows] = probs.to("cpu", torch.float16)
        self.q[rows], self.steps[rows] = q.float().cpu(), steps.to("cpu", torch.int32)
        self.residual[rows], self.logit_residual[rows] = residual.float().cpu(), logit_residual.float().cpu()


@dataclass
class Record:
    layout: Layout
    depth: int
    act: bool
    snapshots: dict[int, States]
    halted: States
    """Each row's state at its first step with q_halt > 0 (if any within D)."""
    halt_step: torch.Tensor
    """(R,) int32: that step, 0 if the row never halted."""
    stats: dict[str, torch.Tensor]
    """STAT_KEYS -> (D, families) float64 sums over the rows at each step."""
    trace_residual: torch.Tensor
    """(n_trace, D) latent residual of the first rows, NaN after a row stopped."""
    trace_exact: torch.Tensor
    """(n_trace, D) 1.0 where that row was exactly right at that step."""
    wall_s: float = 0.0
    final: Optional[Carry] = None
    """(R, seq, width) latents at each row's last step, when asked for (AAS)."""

    @property
    def row_steps(self) -> int:
        """Supervision steps run, summed over rows (the NFE actually spent)."""
        return int(self.stats["active"].sum())


@dataclass
class _Active:
    """The rows in the queue's slots."""

    rows: torch.Tensor
    steps: torch.Tensor
    halt_step: torch.Tensor
    carry: Carry
    prev_logits: torch.Tensor
    ring_residual: torch.Tensor
    ring_logit: torch.Tensor
    noise: list = field(default_factory=list)

    def __len__(self) -> int:
        return self.rows.shape[0]

    def keep(self, mask: torch.Tensor) -> None:
        idx = mask.nonzero().squeeze(1)
        for name in ("rows", "steps", "halt_step", "prev_logits", "ring_residual", "ring_logit"):
            setattr(self, name, getattr(self, name)[idx])
        self.carry = Carry(self.carry.z_h[idx], self.carry.z_l[idx])
        if self.noise:
            self.noise = [self.noise[i] for i in idx.tolist()]

    def extend(self, other: "_Active") -> None:
        for name in ("rows", "steps", "halt_step", "prev_logits", "ring_residual", "ring_logit"):
            setattr(self, name, torch.cat([getattr(self, name), getattr(other, name)]))
        self.carry = Carry(torch.cat([self.carry.z_h, other.carry.z_h]), torch.cat([self.carry.z_l, other.carry.z_l]))
        self.noise = self.noise + other.noise


class _BlockNoise:
    """Dynamics.sample: the i-th latent update of a step takes slice i of the rows' drawn block."""

    def __init__(self, block: torch.Tensor):
        self.block, self.i = block, 0

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        eps = self.block[:, self.i]
        self.i += 1
        return eps.to(z.dtype)


def initial_latents(model: TRM, rows: torch.Tensor, layout: Layout, seed: int) -> Carry:
    """Fresh latents of `rows`: restart 0 as the trainer's evaluation starts, restart r >= 1 like
    chain r mod K of a training refill; random inits draw from the row's own init stream."""
    chains = model.l_init.shape[0]
    _, r, _ = layout.split(rows)
    restart = layout.first_restart + r
    device = model.h_init.device
    if not model.latent_init.random:  # fixed buffers: evaluation starts like chain 0; one call for all rows
        c = model.init_carry(rows.shape[0], chains)
        idx = torch.arange(rows.shape[0]) * chains + restart % chains
        return Carry(c.z_h[idx.to(device)], c.z_l[idx.to(device)])
    parts = []
    for row, k in zip(rows.tolist(), restart.tolist()):
        g = generator(seed, layout.key(row, "init"), device)
        if k == 0:
            parts.append(model.eval_carry(1, g))
        else:
            c = model.init_carry(1, chains, g)
            parts.append(Carry(c.z_h[k % chains][None], c.z_l[k % chains][None]))
    return Carry(torch.cat([c.z_h for c in parts]), torch.cat([c.z_l for c in parts]))


def with_head_classes(members: Members, n_classes: int) -> Members:
    """Members whose token maps also cover head classes beyond the puzzle's tokens (SIC's HALT class,
    which a transform leaves where it is): a prediction of it maps back to itself, a wrong cell."""
    extra = n_classes - members.tokens.shape[1]
    if extra <= 0:
        return members
    ids = torch.arange(members.tokens.shape[1], n_classes, device=members.tokens.device).expand(members.tokens.shape[0], -1)
    return dataclasses.replace(members, tokens=torch.cat([members.tokens, ids], 1),
                               tokens_inv=torch.cat([members.tokens_inv, ids], 1))


def carry_change(before: Carry, after: Carry) -> torch.Tensor:
    """(rows,) the residual of one outer iteration, ||(z_H, z_L)_t - (z_H, z_L)_{t-1}||, in float32
    (EqR's paper, App. D.3: ||f(z_t) - z_t|| with f one outer step; its code's residual metric,
    evaluators/eval_fn.py:351-354, the same norm of the concatenated carry)."""
    dh = (after.z_h.float() - before.z_h.float()).flatten(1).square().sum(1)
    dl = (after.z_l.float() - before.z_l.float()).flatten(1).square().sum(1)
    return (dh + dl).sqrt()


class Rollout:
    """The queue of one checkpoint's rows; `run()` steps it until every row is done."""

    def __init__(self, model: TRM, members: Members, layout: Layout, settings: Settings, depth_cfg,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 damping: float = 0.0, noise_beta: float = 0.0, softmax: str = "softmax",
                 initial: Optional[Carry] = None, keep_final: bool = False,
                 progress: Optional[Callable[[int], None]] = None):
        self.model, self.m, self.layout, self.s = model, with_head_classes(members, model.n_tokens), layout, settings
        self.n_inner, self.n_outer = depth_cfg.n_inner, depth_cfg.n_outer
        self.autocast, self.damping, self.beta, self.softmax = autocast, damping, noise_beta, softmax
        self.initial, self.progress = initial, progress
        self.device = members.inputs.device
        rows, cells, vocab = layout.n_rows, model.n_cells, model.n_tokens
        families, d = layout.n_families, settings.depth
        n_trace = min(settings.n_trace, layout.n_puzzles)
        self.record = Record(
            layout, d, settings.act, {k: States.empty(rows, cells, vocab) for k in settings.snapshots},
            States.empty(rows, cells, vocab), torch.zeros(rows, dtype=torch.int32),
            {k: torch.zeros(d, families, dtype=torch.float64, device=self.device) for k in STAT_KEYS},
            torch.full((n_trace, d), float("nan")), torch.full((n_trace, d), float("nan")))
        if keep_final:
            shape = (rows, model.seq_len, model.width)
            self.record.final = Carry(torch.zeros(shape, dtype=model.forward_dtype), torch.zeros(shape, dtype=model.forward_dtype))
        self.is_snapshot = torch.zeros(d + 1, dtype=torch.bool, device=self.device)
        self.is_snapshot[list(settings.snapshots)] = True
        self.calls_per_step = self.n_outer * (self.n_inner + 1)

    # ---- the queue ---------------------------------------------------------------------------

    def _new_rows(self, rows: torch.Tensor) -> _Active:
        k, dev, L = rows.shape[0], self.device, self.s.window
        if self.initial is not None:
            carry = Carry(self.initial.z_h[rows].to(dev), self.initial.z_l[rows].to(dev))
        else:
            carry = initial_latents(self.model, rows, self.layout, self.s.seed)
        noise = [generator(self.s.seed, self.layout.key(row, "noise"), dev) for row in rows.tolist()] if self.beta > 0 else []
        zeros = torch.zeros(k, dtype=torch.long, device=dev)
        nan = torch.full((k, L), float("nan"), device=dev)
        logits = torch.zeros(k, self.model.n_cells, self.model.n_tokens, device=dev)
        return _Active(rows.to(dev), zeros, zeros.clone(), carry, logits, nan, nan.clone(), noise)

    def run(self) -> Record:
        start = time.perf_counter()
        todo = torch.arange(self.layout.n_rows)
        active, nxt = None, 0
        while True:
            free = self.s.max_batch - (len(active) if active is not None else 0)
            if free > 0 and nxt < len(todo):
                new = self._new_rows(todo[nxt:nxt + free])
                nxt += free
                if active is None:
                    active = new
                else:
                    active.extend(new)
            if active is None or len(active) == 0:
                break
            done = self._step(active)
            if self.progress is not None:
                self.progress(len(active))
            active.keep(~done)
        self.record.stats = {k: v.cpu() for k, v in self.record.stats.items()}
        self.record.wall_s = time.perf_counter() - start
        return self.record

    # ---- one step of every active row --------------------------------------------------------

    def _dynamics(self, a: _Active) -> Dynamics:
        if self.beta <= 0:
            return Dynamics(self.damping, 0.0)
        shape = (self.calls_per_step, self.model.seq_len, self.model.width)
        block = torch.empty(len(a), *shape, device=self.device)
        for i, g in enumerate(a.noise):
            torch.randn(shape, generator=g, device=self.device, out=block[i])
        return Dynamics(self.damping, self.beta, sample=_BlockNoise(block))

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        return LOG_PROBS.get(self.softmax)(logits).exp().float()

    @torch.no_grad()
    def _step(self, a: _Active) -> torch.Tensor:
        t, _, p = self.layout.split(a.rows)
        with self.autocast():
            out = self.model(a.carry, self.m.inputs[t, p], self.n_inner, self.n_outer, self._dynamics(a),
                             self.m.puzzle_ids[p])
        a.steps += 1
        steps, k = a.steps, len(a)
        logits = out.logits.float()
        correct = logits.argmax(-1) == self.m.labels[t, p]
        exact, cells = correct.all(-1), correct.float().mean(-1)
        residual = carry_change(a.carry, out.carry)
        per_cell = (logits - a.prev_logits).norm(dim=-1).mean(dim=-1)
        logit_residual = torch.where(steps > 1, per_cell, float("nan"))
        col = (steps - 1) % self.s.window
        a.ring_residual[torch.arange(k, device=self.device), col] = residual
        a.ring_logit[torch.arange(k, device=self.device), col] = logit_residual
        self._stats(a, exact, cells, residual, logit_residual, halts(out.q_halt))
        # record states: at snapshot depths, and at each row's first halt (the trainer's read-out)
        snap = self.is_snapshot[steps]
        newly, halt_step = first_halts(out.q_halt, a.halt_step, steps)
        if bool((snap | newly).any()):
            self._record(a, (snap | newly).nonzero().squeeze(1), logits, out.q_halt, snap, newly)
        a.halt_step = halt_step
        done = (steps >= self.s.depth) | (newly if self.s.act else torch.zeros_like(newly))
        if self.record.final is not None and bool(done.any()):
            idx = done.nonzero().squeeze(1)
            rows = a.rows[idx].cpu()
            self.record.final.z_h[rows] = out.carry.z_h[idx].cpu()
            self.record.final.z_l[rows] = out.carry.z_l[idx].cpu()
        a.carry, a.prev_logits = out.carry, logits
        return done

    def _stats(self, a: _Active, exact, cells, residual, logit_residual, halting) -> None:
        s = self.record.stats
        t, r, p = self.layout.split(a.rows)
        where = (a.steps - 1, t * self.layout.n_restarts + r)
        for key, value in (("active", torch.ones_like(cells)), ("exact", exact.float()), ("cells", cells),
                           ("residual", residual), ("logit_residual", logit_residual.nan_to_num(0.0)),
                           ("halting", halting.float())):
            s[key].index_put_(where, value.double(), accumulate=True)
        traced = a.rows < self.record.trace_residual.shape[0]
        if bool(traced.any()):
            rows, st = a.rows[traced].cpu(), (a.steps[traced] - 1).cpu()
            self.record.trace_residual[rows, st] = residual[traced].cpu()
            self.record.trace_exact[rows, st] = exact[traced].float().cpu()

    def _record(self, a: _Active, idx, logits, q_halt, snap, newly) -> None:
        t, _, _ = self.layout.split(a.rows[idx])
        pred, probs = self.m.to_puzzle_space(t, logits[idx].argmax(-1), self._probs(logits[idx]))
        res, lres = a.ring_residual[idx].nanmean(1), a.ring_logit[idx].nanmean(1)
        values = (q_halt[idx], a.steps[idx], res, lres)
        rows = a.rows[idx]
        for depth in sorted({int(x) for x in a.steps[idx][snap[idx]].tolist()}):
            m = snap[idx] & (a.steps[idx] == depth)
            self.record.snapshots[depth].write(rows[m], pred[m], probs[m], *(v[m] for v in values))
        m = newly[idx]
        if bool(m.any()):
            self.record.halted.write(rows[m], pred[m], probs[m], *(v[m] for v in values))
            self.record.halt_step[rows[m].cpu()] = a.steps[idx][m].to("cpu", torch.int32)
