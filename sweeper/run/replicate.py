"""`python -m sweeper replicate NAME --top K --seeds 0,1,2,3`: a sweep's K best configurations
re-run over more seeds, as a second phase of the same sweep.

- Which: the configurations ranked by the mean of the sweep's metric over their final trials of the
  search phase (trained to train.steps, finite value), best first. Ranking on the search phase
  only makes the choice stable: the same command picks the same configurations after any number
  of replicate phases.
- What runs: each (configuration, seed) pair that has no final trial in any phase yet. A pair the
  search already trained to the end is reused, not re-run; a seed that ASHA stopped is re-run.
- Where: `STORAGE/NAME/replicate_N/`, a Ray experiment of its own laid out like a sweep
  (results.csv/parquet, aim_runs.json, trial_times.json, trial folders) plus `phase.json` (the plan
  and its status). Trials get the sweep's base config, resources and Aim repo and experiment,
  with the exact parameters of the search's trials (their params.json), so their config_id is the
  search's and reports pool the seeds. Their Aim runs carry `sweep.phase = replicate_N` and the tag
  `replicate`. No scheduler: every trial trains to train.steps.
- `--set`: `resources.cpu`, `resources.gpu`, `search.max_concurrent` and `failure.max_retries` change
  how the phase runs, not what a trial computes. A trainer config key (`train.steps=200`) changes
  what it computes, so it becomes one more parameter of every replicated configuration: they get
  their own configuration ids (results, reports and Aim keep them apart from the search's) and no
  search trial is reused. Any other key (the metric, the space, seeds) is refused: that is a new sweep.
- Resume: the same command continues an interrupted phase (Tune's restore); a different one is
  refused until that phase is finished.
- How: the same Tune experiment as the search (sweeper.run.phase.run_phase), with a searcher that
  suggests exactly the planned points (`FixedPoints`).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune.search import Searcher

from trm_core.config import field_types, from_dict, parse_override, set_value, to_dict
from trm_core.config import validate as validate_config
from trm_core.errors import ConfigError, UserError

from sweeper.report import data as rd
from sweeper.run.phase import Phase, run_phase
from sweeper.run.sweeps import SEARCH, check_restorable, phase_dirs, read_phase, spec_for_resume, tune_dir
from sweeper.run.table import read_table, write_json_atomic
from sweeper.run.trial import TRIAL_INDEX, SweepBase
from sweeper.spec import SweepSpec, apply_sets, validate


def parse_seeds(text: str) -> list[int]:
    """'0,1,2,3' or '0-3' (or a mix, '0-3,8') -> [0, 1, 2, 3]; distinct integers >= 0."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise UserError(f"--seeds must be integers like 0,1,2,3 or 0-3, but got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds must be distinct integers >= 0, but got {text!r}")
    return seeds


def rank(sweep: rd.Sweep) -> pd.DataFrame:
    """Configurations with a final trial in the search phase: group, mean, n; best first."""
    t = sweep.trials
    final = t[(t["phase"] == SEARCH) & (t["outcome"] == rd.FINAL)]
    table = final.groupby("group")[sweep.metric].agg(["mean", "count"]).reset_index()
    return table.sort_values(["mean", "count", "group"], ascending=[sweep.mode == "min", False, True],
                             ignore_index=True)


def exact_params(sweep: rd.Sweep, group: str) -> dict[str, Any]:
    """The parameters Ray gave the group's trials (params.json), seed index removed."""
    for _, row in sweep.trials[sweep.trials["group"] == group].iterrows():
        f = Path(str(row["trial_dir"])) / "params.json"
        if f.exists():
            params = json.loads(f.read_text())
            params.pop(TRIAL_INDEX, None)
            return params
    raise UserError(f"configuration {group} of sweep {sweep.name}: no trial folder holds its params.json"
                    f" (looked under {sweep.dir}); replicate needs the search's trial folders")


PHASE_KEYS = ("resources.cpu", "resources.gpu", "search.max_concurrent", "failure.max_retries")
"""Spec keys a replicate phase may set: how it runs, not what its trials compute."""


def split_sets(sets: list[str]) -> tuple[list[str], dict[str, Any]]:
    """`--set` of a replicate phase -> (spec-level sets, trainer overrides {key: value}); other keys refused."""
    spec_sets, overrides = [], {}
    types = field_types()
    for text in sets:
        key, value = parse_override(text)
        if key in PHASE_KEYS:
            spec_sets.append(text)
        elif key in types:
            overrides[key] = value
        else:
            raise UserError(f"replicate --set {key}: a replicate phase takes {', '.join(PHASE_KEYS)} or trainer config"
                            f" keys (train.steps=200); to change {key}, run a new sweep with"
                            f" `python -m sweeper run SPEC --set {text}`")
    return spec_sets, overrides


def phase_spec(d: Path, spec_sets: list[str], overrides: dict[str, Any]) -> SweepSpec:
    """The sweep's spec with the phase's --set applied; trainer overrides checked on its base config."""
    spec, record = spec_for_resume(d)
    if spec_sets:
        name, storage, aim_repo = spec.name, spec.storage, spec.aim_repo
        spec = validate(record["spec_file"], apply_sets(record["spec_file"], record["spec"], spec_sets))
        spec.name, spec.storage, spec.aim_repo = name, storage, aim_repo
    cfg = from_dict(to_dict(spec.base_cfg))
    try:
        for key, value in overrides.items():
            set_value(cfg, key, value, source="--set")
        validate_config(cfg)
    except ConfigError as exc:
        raise UserError(f"replicate --set: {exc}") from None
    return spec


def make_plan(sweep: rd.Sweep, top: int, seeds: list[int], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    ranked = rank(sweep)
    if ranked.empty:
        counts = sweep.trials["outcome"].value_counts().to_dict()
        raise UserError(f"sweep {sweep.name} has no configuration with a trial trained to the end yet"
                        f" (outcomes: {counts or 'no trials'}); nothing to rank")
    chosen = ranked.head(top)
    t = sweep.trials
    # with trainer overrides the replicated configurations are new ones: nothing of the search is reused
    done = set() if overrides else set(zip(t.loc[t["outcome"] == rd.FINAL, "group"],
                                           t.loc[t["outcome"] == rd.FINAL, "seed"].astype(int)))
    configs, points = [], []
    for _, row in chosen.iterrows():
        params = exact_params(sweep, row["group"])
        configs.append({"config_id": row["group"], "mean": float(row["mean"]), "n": int(row["count"]), "params": params})
        points += [{**params, **(overrides or {}), TRIAL_INDEX: i} for i, s in enumerate(seeds)
                   if (row["group"], s) not in done]
    return {"top": top, "seeds": seeds, "metric": sweep.metric, "mode": sweep.mode, "configs": configs,
            "pairs": len(chosen) * len(seeds), "points": points, "overrides": dict(overrides or {})}


def next_phase(d: Path, top: int, seeds: list[int], sets: list[str] = ()) -> tuple[Path, dict | None]:
    """The phase directory to use: the unfinished one if the command matches it, else a new one."""
    phases = [p for name, p in phase_dirs(d) if name != SEARCH]
    last = read_phase(phases[-1]) if phases else None
    if last and last.get("status") == "running":
        raise UserError(f"{phases[-1]} is running (pid {last.get('pid')}); wait for it to finish")
    if last and last.get("status") != "finished":
        if (last.get("top"), last.get("seeds"), last.get("sets", [])) != (top, seeds, list(sets)):
            again = "".join(f" --set {x}" for x in last.get("sets", []))
            raise UserError(f"{phases[-1].name} of sweep {d.name} is unfinished (--top {last['top']} --seeds "
                            f"{','.join(map(str, last['seeds']))}{again}); run that command again to finish it first")
        return phases[-1], last
    return d / f"replicate_{len(phases) + 1}", None


def describe_plan(plan: dict[str, Any], sweep: rd.Sweep, phase: str) -> str:
    lines = [f"replicate {sweep.name}: top {len(plan['configs'])} configuration(s) by {plan['metric']} ({plan['mode']})"
             f" x seeds {plan['seeds']}"]
    for i, c in enumerate(plan["configs"], 1):
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in c["params"].items())
        lines.append(f"  {i}. {c['config_id']}: mean {c['mean']:.4f} over {c['n']} final seed(s); {params}")
    reused = plan["pairs"] - len(plan["points"])
    if plan.get("overrides"):
        lines.append("  with " + ", ".join(f"{k}={v}" for k, v in plan["overrides"].items())
                     + ": new configurations (their own ids), nothing of the search reused")
    lines.append(f"  {plan['pairs']} (configuration, seed) pairs: {reused} already trained to the end (reused),"
                 f" {len(plan['points'])} to run" + (f" -> {phase}" if plan["points"] else ""))
    return "\n".join(lines)


def run_replicate(name_or_path: str, top: int, seeds: list[int], *, storage: str | None = None,
                  address: str | None = None, verbose: bool = False, out=None, sets: list[str] = ()) -> dict[str, Any]:
    """Plan, then run (or resume) a replicate phase; returns its phase.json record."""
    out = out or sys.stdout
    if top < 1:
        raise UserError(f"--top must be >= 1, but got {top}")
    spec_sets, overrides = split_sets(list(sets))
    sweep = rd.load(name_or_path, storage)
    if sweep.record.get("status") == "running":
        raise UserError(f"sweep {sweep.name} is still running (pid {sweep.record.get('pid')}); replicate after it finishes")
    spec = phase_spec(sweep.dir, spec_sets, overrides)
    phase_dir, record = next_phase(sweep.dir, top, seeds, list(sets))
    if record is None:
        plan = make_plan(sweep, top, seeds, overrides)
        print(describe_plan(plan, sweep, phase_dir.name), file=out)
        if not plan["points"]:
            print("nothing to run: every pair has a trial trained to the end", file=out)
            return {"status": "finished", "phase": None, **plan}
        record = {"phase": phase_dir.name, "sweep": sweep.name, **plan, "sets": list(sets), "created_at": time.time()}
    else:
        print(f"resuming {phase_dir.name} of {sweep.name}: {len(record['points'])} trials", file=out)
    resume = (tune_dir(phase_dir) / "tuner.pkl").exists()
    if resume:
        check_restorable(phase_dir, f"{phase_dir.name} of sweep {sweep.name}")
    return _run_phase(spec, phase_dir, record, resume=resume, address=address, verbose=verbose, out=out)


def _run_phase(spec: SweepSpec, phase_dir: Path, record: dict[str, Any], *, resume: bool, address: str | None,
               verbose: bool, out) -> dict[str, Any]:
    base = SweepBase.from_spec(spec, embedded=address is None)
    base.seeds = list(record["seeds"])
    points = record["points"]
    phase = Phase(spec=spec, name=phase_dir.name, dir=phase_dir, base=base, trials=len(points),
                  headline=f"{phase_dir.name} of {spec.name}: {len(points)} trials",
                  new_searcher=lambda: FixedPoints(points))

    def started() -> None:
        phase_dir.mkdir(parents=True, exist_ok=True)
        record.update(status="running", pid=os.getpid(), host=socket.gethostname())
        write_json_atomic(phase_dir / "phase.json", record)

    fitted = run_phase(phase, address=address, resume=resume, verbose=verbose, out=out, on_start=started)
    record["status"], record["errors"] = _final_status(phase_dir, len(points), spec.base_cfg.train.time_budget_s > 0)
    record.update(wall_s=round(fitted.wall_s, 2), finished_at=time.time())
    write_json_atomic(phase_dir / "phase.json", record)
    print(f"{phase_dir.name} of {spec.name} {record['status']} in {record['wall_s']:.0f}s"
          f" ({record['errors']} trials errored)", file=out)
    if record["status"] != "finished":
        print(f"resume with the same command: python -m sweeper replicate {spec.name} --top {record['top']}"
              f" --seeds {','.join(map(str, record['seeds']))}"
              + "".join(f" --set {x}" for x in record.get("sets", [])), file=out)
    print(f"report: python -m sweeper report {spec.name}", file=out)
    return record


class FixedPoints(Searcher):
    """A Tune searcher that suggests `points` in order, once each, then finishes. Its position is
    saved with the experiment, so a resumed phase never suggests a point twice."""

    def __init__(self, points: list[dict[str, Any]]):
        super().__init__()
        self.points, self.next = list(points), 0

    def suggest(self, trial_id: str):
        if self.next >= len(self.points):
            return Searcher.FINISHED
        self.next += 1
        return dict(self.points[self.next - 1])

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"points": self.points, "next": self.next}))

    def restore(self, checkpoint_path: str) -> None:
        state = json.loads(Path(checkpoint_path).read_text())
        self.points, self.next = state["points"], state["next"]


def _final_status(phase_dir: Path, n: int, time_budget: bool) -> tuple[str, int]:
    """finished when each of the n trials trained to train.steps or failed, else interrupted.

    With no scheduler, a trial that ended early was interrupted (Ctrl-C labels it `interrupted`, or
    done without a step) unless the trainer has a time budget; Tune's restore re-runs it. A trial
    that diverged has ended."""
    table = phase_dir / "results.csv"
    if not table.exists():
        return "interrupted", 0
    t = read_table(table)
    ended = t["status"].isin(["error", "diverged"]) | ((t["status"] == "done") & (t["step"] >= t["steps_target"]))
    if time_budget:
        ended |= t["status"] == "stopped_early"
    return ("finished" if int(ended.sum()) >= n else "interrupted"), int((t["status"] == "error").sum())
