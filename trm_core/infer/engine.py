"""The test-time scaling engine: `run(checkpoints, InferSpec) -> Result`.

Load the members (checkpoints x transforms, trm_core.infer.members), roll every checkpoint's
rows out once to the largest depth D with the largest breadth B (trm_core.infer.rollout), then read
that one rollout at every asked depth d <= D and breadth b <= B (trm_core.infer.views) and score
every selection rule on it (trm_core.infer.selection), with the diagnostics
(trm_core.infer.diagnostics). NFE counts supervision steps (EqR: one outer iteration = one
function evaluation), per puzzle, summed over the members a rule reads.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import torch
from tqdm import tqdm

from trm_core.errors import UserError
from trm_core.infer import diagnostics as diag
from trm_core.infer.members import Loaded, load_members, member_inputs
from trm_core.infer.rollout import Layout, Members, Record, Rollout, Settings
from trm_core.infer.selection import CEILINGS, SELECTION_RULES, oracle, score
from trm_core.infer.transforms import build_transforms
from trm_core.infer.views import build_view
from trm_core.model.trm import Dynamics

QUEUE_ROWS = {"cpu": 256, "cuda": 4096}
"""The queue's default size by device. On a 2-core CPU a row cost least in batches of 128-256 rows
(sudoku4_tiny, 8 restarts x 200 puzzles, 1 thread: 256 rows 2.9 s, 1,024 rows 3.2 s in bf16, 4.4 s
against 6.1 s in fp32; README, Speed); a GPU wants its batches large."""

DEFAULT_RULES = SELECTION_RULES.defaults()
"""Every selection rule but the variants asked for by name (halt_first_max_q, majority_q)."""


@dataclass
class InferSpec:
    """What to roll out and how to read it (the `eval` flags; the sweeper's `final_eval` key)."""

    depths: tuple[int, ...] = ()
    """Depth budgets D (supervision steps); the rollout runs to the largest. Empty: the first
    checkpoint's trained N_sup (recursion.n_supervision)."""
    breadths: tuple[int, ...] = (1,)
    """Breadths B (independent restarts per member); the rollout runs the largest."""
    transforms: str = "1"
    """Input transforms per checkpoint: a count or names (trm_core.infer.transforms)."""
    act: bool = False
    """Stop each row at its first q_halt > 0 (the ACT queue); rules read the halted answers."""
    select: tuple[str, ...] = DEFAULT_RULES
    max_batch: int = 0
    """Rows stepped together (the queue's size); 0: by device, QUEUE_ROWS (a CPU's cost per row grows
    with the batch beyond a few hundred rows, a GPU's falls)."""
    noise_beta: Optional[float] = None
    """Test-time path noise beta; None: the checkpoint's evaluation value."""
    window: int = 3
    """L, the residual window of top1_converged."""
    seed: int = 0
    """Seed of the rows' init and noise streams and of the random transforms."""
    aas: bool = False
    """Also measure the Asymptotic Alignment Score (one more 2 x D rollout of one member per checkpoint)."""
    first_restart: int = 0
    """Restart index of the first restart (runs of disjoint restart ranges can be combined)."""

    def check(self) -> "InferSpec":
        for flag, values in (("--depth", self.depths), ("--breadth", self.breadths)):
            for v in values:
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise UserError(f"{flag} must be >= 1, but got {v!r}")
        if not self.breadths:
            raise UserError("--breadth needs at least one value")
        if self.max_batch < 0:
            raise UserError(f"--max-batch must be >= 1 (or 0: by device), but got {self.max_batch}")
        if self.window < 1:
            raise UserError(f"--window must be >= 1, but got {self.window}")
        if self.noise_beta is not None and not self.noise_beta >= 0:
            raise UserError(f"--noise-beta must be >= 0, but got {self.noise_beta}")
        if self.first_restart < 0:
            raise UserError(f"first_restart must be >= 0, but got {self.first_restart}")
        if not self.select:
            raise UserError("--select needs at least one rule")
        for name in self.select:
            SELECTION_RULES.get(name)
        return self


def spec_from_mapping(d: Mapping[str, Any], where: str = "final_eval") -> tuple[InferSpec, int]:
    """(InferSpec, limit) from a YAML mapping {depth, breadth, select, transforms, act, limit, ...}
    (the sweeper's `final_eval`); depth and breadth take an int or a list, select a list or a comma string."""

    def ints(key: str) -> tuple[int, ...]:
        v = d[key] if isinstance(d[key], list) else [d[key]]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise UserError(f"{where}.{key} must be an integer or a list of integers, but got {d[key]!r}")
        return tuple(v)

    kwargs: dict[str, Any] = {}
    for key, name in (("depth", "depths"), ("breadth", "breadths")):
        if key in d:
            kwargs[name] = ints(key)
    if "select" in d:
        sel = d["select"].split(",") if isinstance(d["select"], str) else d["select"]
        if not isinstance(sel, list) or not all(isinstance(x, str) for x in sel):
            raise UserError(f"{where}.select must be a list of rule names, but got {d['select']!r}")
        kwargs["select"] = tuple(x.strip() for x in sel)
    for key, kind in (("act", bool), ("aas", bool), ("max_batch", int), ("window", int), ("seed", int),
                      ("noise_beta", (int, float)), ("transforms", (int, str))):
        if key in d:
            if not isinstance(d[key], kind) or (kind is not bool and isinstance(d[key], bool)):
                raise UserError(f"{where}.{key} has the wrong type: {d[key]!r}")
            kwargs[key] = str(d[key]) if key == "transforms" else d[key]
    limit = d.get("limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise UserError(f"{where}.limit must be an integer >= 0, but got {limit!r}")
    return InferSpec(**kwargs).check(), limit


@dataclass
class Result:
    header: dict[str, Any]
    rows: list[dict[str, Any]]
    """One per (depth, breadth, rule): exact_acc, cell_acc, avg_nfe, wall_s, selection_failures."""
    diagnostics: dict[str, Any]
    metrics: dict[str, float]
    """Flat `eval_tts/...` keys at the largest depth and breadth."""
    notes: list[str] = field(default_factory=list)
    by_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    """With `run(..., prefixes=True)`: the rows again for the first m checkpoints, m = 1..C (each row
    has `checkpoints` m and `members`), read from the same rollout: accuracy against ensemble size."""

    def to_json(self) -> dict[str, Any]:
        out = {**self.header, "results": self.rows, "diagnostics": self.diagnostics, "metrics": self.metrics,
               "notes": self.notes}
        if self.by_checkpoints:
            out["by_checkpoints"] = self.by_checkpoints
        return out

    def plot_data(self, traces: int = 16) -> dict[str, Any]:
        """What trm_core.infer.plots.figures needs, and no more (a sweep trial reports it)."""
        d = self.diagnostics
        small = {"halting": d["halting"], "steps": d["steps"],
                 "traces": {k: v[:traces] for k, v in d["traces"].items()}}
        return {"settings": self.header["settings"], "results": self.rows, "diagnostics": small}


def _dynamics(ld: Loaded, beta: Optional[float]) -> tuple[float, float]:
    d = Dynamics.evaluation(ld.cfg.recursion)
    return d.damping, d.noise_beta if beta is None else beta


def rollout(ld: Loaded, members: Members, layout: Layout, settings: Settings, **kwargs) -> Record:
    """Roll one checkpoint's rows out (its own n, T, dynamics, softmax and precision)."""
    damping, beta = _dynamics(ld, settings.noise_beta)
    return Rollout(ld.model, members, layout, settings, ld.cfg.recursion, ld.autocast, damping, beta,
                   ld.cfg.loss.kind, **kwargs).run()


def _first_member(members: Members) -> Members:
    return Members(*(getattr(members, f.name)[:1] if f.name != "puzzle_ids" else members.puzzle_ids
                     for f in dataclasses.fields(Members)))


def asymptotic_alignment(ld: Loaded, members: Members, checkpoint: int, settings: Settings) -> dict:
    """Seed 002's AAS for the first member (transform 0, restart 0) of one checkpoint."""
    one, n = _first_member(members), members.inputs.shape[1]
    s = dataclasses.replace(settings, snapshots=(settings.depth,), act=False)
    first = rollout(ld, one, Layout(checkpoint, 1, 1, n), s, keep_final=True)
    second = rollout(ld, one, Layout(checkpoint, 1, 1, n, prefix="infer_aas"), s, initial=first.final,
                     keep_final=True)
    d = settings.depth
    return diag.alignment(first.final, second.final, first.snapshots[d].pred, second.snapshots[d].pred)


def _notes(loaded: Sequence[Loaded], breadth: int, beta: Optional[float]) -> list[str]:
    notes = []
    for ld in loaded:
        r = ld.cfg.recursion
        _, b = _dynamics(ld, beta)
        if breadth > r.chains and not ld.model.latent_init.random and b == 0:
            notes.append(f"{ld.path}: fixed initial latents ({r.latent_init}) and no path noise, so restarts beyond its {r.chains} "
                         f"chain(s) repeat the same run; use --noise-beta or --set recursion.latent_init=normal")
    return notes


def evaluate_views(records: Sequence[Record], labels: torch.Tensor, spec: InferSpec, depths, breadths,
                   n_checkpoints: int, wall_s: float) -> tuple[list[dict], list[dict]]:
    """Every rule at every (depth, breadth): table rows, and per-view diagnostics."""
    rows, views = [], []
    for d in depths:
        for b in breadths:
            view = build_view(records, labels, d, b, halted=spec.act)
            ceiling = score(oracle(view), labels)["exact"]
            for name in spec.select:
                start = time.perf_counter()
                decision = SELECTION_RULES.get(name)(view)
                s = score(decision, labels)
                rows.append({"depth": d, "breadth": b, "rule": name, "exact_acc": float(s["exact"].float().mean()),
                             "cell_acc": float(s["cells"].mean()), "avg_nfe": float(decision.nfe.mean()),
                             "wall_s": wall_s + time.perf_counter() - start,
                             "selection_failures": diag.selection_failure_share(s["exact"], ceiling),
                             "ceiling": name in CEILINGS})
            views.append({"depth": d, "breadth": b, "members": int(view.pred.shape[1]),
                          "delta_pi": diag.delta_pi(view, b), "member_avg_exact_acc": diag.member_average(view),
                          "checkpoint_exact_acc": diag.per_checkpoint(view, n_checkpoints)})
    return rows, views


def prefix_rows(records: Sequence[Record], labels: torch.Tensor, spec: InferSpec, depths, breadths,
                n_transforms: int) -> list[dict]:
    """The rows of `evaluate_views` for the first m checkpoints (m = 1..C), each tagged with m and its
    member count m x transforms x breadth; wall_s is the rollout time of those m checkpoints."""
    out = []
    for m in range(1, len(records) + 1):
        part = records[:m]
        rows, _ = evaluate_views(part, labels, spec, depths, breadths, m, sum(r.wall_s for r in part))
        out += [{"checkpoints": m, "members": m * n_transforms * r["breadth"], **r} for r in rows]
    return out


def flat_metrics(rows: list[dict], views: list[dict], n_puzzles: int, wall_s: float) -> dict[str, float]:
    """`eval_tts/<rule>/<metric>` at the largest depth and breadth, for Tune, Optuna and Aim."""
    d, b = max(r["depth"] for r in rows), max(r["breadth"] for r in rows)
    out: dict[str, float] = {"eval_tts/depth": d, "eval_tts/breadth": b, "eval_tts/n_puzzles": n_puzzles,
                             "eval_tts/wall_s": wall_s}
    for r in rows:
        if r["depth"] == d and r["breadth"] == b:
            for key in ("exact_acc", "cell_acc", "avg_nfe", "selection_failures"):
                out[f"eval_tts/{r['rule']}/{key}"] = r[key]
    v = next(v for v in views if v["depth"] == d and v["breadth"] == b)
    out.update({"eval_tts/members": v["members"], "eval_tts/delta_pi": v["delta_pi"],
                "eval_tts/member_avg_exact_acc": v["member_avg_exact_acc"]})
    return out


def run(checkpoints: Sequence[str | os.PathLike], spec: InferSpec, overrides: Sequence[str] = (), limit: int = 0,
        progress: bool = False, prefixes: bool = False) -> Result:
    """Roll the members out once and read every rule at every depth and breadth; `prefixes`: also for
    the first m checkpoints, m = 1..C (Result.by_checkpoints; the sweeper's ensembles plot accuracy
    against ensemble size from it)."""
    spec.check()
    loaded, eval_set, task = load_members(checkpoints, overrides, limit)
    device = loaded[0].model.h_init.device
    depths = sorted(set(spec.depths or (loaded[0].cfg.recursion.n_supervision,)))
    breadths = sorted(set(spec.breadths))
    big_d, big_b = depths[-1], breadths[-1]
    transforms = build_transforms(spec.transforms, task, spec.seed)
    members = member_inputs(eval_set, transforms, device)
    labels = torch.as_tensor(eval_set.labels.astype("int64"))
    n = len(eval_set)
    queue = spec.max_batch or QUEUE_ROWS.get(device.type, QUEUE_ROWS["cuda"])
    settings = Settings(big_d, tuple(depths), spec.act, queue, spec.window, spec.seed, spec.noise_beta)
    total = len(loaded) * len(transforms) * big_b * n * big_d * (1 + (2 / (len(transforms) * big_b) if spec.aas else 0))
    bar = tqdm(total=int(total), disable=not progress or None, unit=" row-steps", unit_scale=True, dynamic_ncols=True,
               desc="rollout", leave=False)
    records, alignment = [], []
    for c, ld in enumerate(loaded):
        layout = Layout(c, len(transforms), big_b, n, spec.first_restart)
        records.append(rollout(ld, members, layout, settings, progress=bar.update))
        if spec.aas:
            alignment.append(asymptotic_alignment(ld, members, c, settings))
            bar.update(2 * n * big_d)
    bar.close()
    wall_s = sum(r.wall_s for r in records)
    rows, views = evaluate_views(records, labels, spec, depths, breadths, len(loaded), wall_s)
    diagnostics = {"views": views, "halting": diag.halting(records, labels), "steps": diag.step_curves(records),
                   "traces": diag.traces(records),
                   "row_steps_run": sum(r.row_steps for r in records), "rollout_wall_s": wall_s}
    if spec.aas:
        diagnostics["aas"] = alignment
    header = {
        "checkpoints": [{"path": ld.path, "step": ld.step, "weights": ld.weights} for ld in loaded],
        "task": task.describe(), "n_puzzles": n, "transforms": [t.name for t in transforms],
        "settings": {"depths": depths, "breadths": breadths, "act": spec.act, "select": list(spec.select),
                     "max_batch": queue, "noise_beta": spec.noise_beta, "window": spec.window,
                     "seed": spec.seed, "limit": limit, "overrides": list(overrides), "device": str(device)},
    }
    by_checkpoints = prefix_rows(records, labels, spec, depths, breadths, len(transforms)) if prefixes else []
    return Result(header, rows, diagnostics, flat_metrics(rows, views, n, wall_s), _notes(loaded, big_b, spec.noise_beta),
                  by_checkpoints)
