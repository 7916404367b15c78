"""`python -m sweeper ensemble NAME [--top K] [engine flags]`: the final checkpoints of a sweep's K best
configurations (every seed any phase trained to the end) as one test-time ensemble.

- Members: the configurations ranked as `sweeper report` ranks them (replicated ones first, then by
  the mean of the sweep's metric; report.group_table), the best K, each with every seed it has a
  final trial for (a replicate phase's trial replaces the search's, report.final_trials); a trial's
  final checkpoint is the last one it reported to Tune (kept in the sweep's storage), else its
  trainer folder's newest, at the step the trial ended on. Checkpoints are ordered best
  configuration first, then by seed.
- Evaluation: the test-time engine (trm_core.infer.engine.run) with the flags of `python -m trm_core
  eval` (depth, breadth, transforms, ACT, rules, ...), one rollout; the same numbers as `trm_core eval
  CKPT_1 ... CKPT_C` with those flags (a test asserts it). The rollout is also read for the first m
  checkpoints, m = 1..C: accuracy against ensemble size and against NFE.
- Written to `SWEEP/ensembles/topK-<key>/` (key: a hash of the checkpoints and the settings):
  `ensemble.json` (the engine's JSON plus the members), `ensemble.csv/.parquet` (one row per
  (first m checkpoints, depth, breadth, rule)), `plots/*.png`; an Aim run tagged `ensemble` in the
  sweep's experiment. The same command again reuses `ensemble.json` (nothing is rolled out), draws
  the tables and plots from it again and keeps the Aim run. `sweeper report NAME` adds a section per ensemble
  (sweeper/report/ensemble_view.py, which also draws the terminal's table). Docs: docs/REPORTS.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import time
from pathlib import Path
from typing import Any

import pandas as pd

from trm_core.checkpoint import latest_valid_checkpoint, load_checkpoint
from trm_core.cli_args import overrides
from trm_core.errors import UserError, write_text_atomic

from sweeper.report import data as rd
from sweeper.report.ensemble_view import ENSEMBLES, RESULT, blocks_of, read_result
from sweeper.report.render import to_markdown
from sweeper.run.sweeps import read_json_dict
from sweeper.report.report import attach_to_aim, final_trials, group_table, write_table


@dataclasses.dataclass
class Member:
    """One checkpoint of the ensemble: the final trial it ends."""

    group: str
    seed: int
    phase: str
    trial_id: str
    value: float
    """The sweep's metric of that trial."""
    checkpoint: str
    step: int


def pick_members(sweep: rd.Sweep, top: int) -> tuple[list[Member], list[str]]:
    """The final checkpoints of the `top` best configurations; and notes (fewer configurations than asked)."""
    if top < 1:
        raise UserError(f"--top must be >= 1, but got {top}")
    final, _ = final_trials(sweep)
    table = group_table(sweep, final, seed=0)
    if table.empty:
        counts = ", ".join(f"{n} {o}" for o, n in sorted(sweep.trials["outcome"].value_counts().items())) or "no trials"
        raise UserError(f"sweep {sweep.name} has no trial trained to the end ({counts}): an ensemble needs final"
                        " checkpoints")
    groups = list(table.index)[:top]
    notes = [] if len(groups) == top else [f"--top {top}: only {len(groups)} configuration(s) have final trials"]
    members = []
    for g in groups:
        for _, t in final[final["group"] == g].sort_values("seed").iterrows():
            members.append(final_checkpoint(t, sweep.metric))
    return members, notes


def final_checkpoint(trial: pd.Series, metric: str) -> Member:
    """The trial's final checkpoint: the newest readable one Tune kept in the sweep's storage
    (`checkpoint_NNNNNN`, reported with the last evaluation), else its trainer folder's, at the step the
    trial ended on."""
    trial_dir = Path(str(trial["trial_dir"]))
    where = f"trial {trial['trial_id']} ({trial['group']}, seed {int(trial['seed'])}, {trial['phase']})"
    candidates = sorted(trial_dir.glob("checkpoint_*"), reverse=True)
    own = latest_valid_checkpoint(trial_dir / "trainer") if (trial_dir / "trainer").is_dir() else None
    steps = []
    for path in candidates + ([own] if own is not None else []):
        try:
            step = int(load_checkpoint(path)["step"])
        except UserError:
            continue
        if step == int(trial["step"]):
            return Member(str(trial["group"]), int(trial["seed"]), str(trial["phase"]), str(trial["trial_id"]),
                          float(trial[metric]), str(path), step)
        steps.append(step)
    found = f" (readable ones are at step {', '.join(map(str, sorted(set(steps))))})" if steps else ""
    raise UserError(f"{where} ended at step {int(trial['step'])}, but {trial_dir} has no readable checkpoint of that"
                    f" step{found}: an ensemble needs every member's final checkpoint (was the sweep moved or pruned?)")


def ensemble_key(members: list[Member], spec, limit: int, overrides: list[str]) -> str:
    blob = json.dumps({"checkpoints": [m.checkpoint for m in members], "steps": [m.step for m in members],
                       "settings": dataclasses.asdict(spec), "limit": limit, "overrides": list(overrides)},
                      sort_keys=True, default=list)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def build(sweep: rd.Sweep, top: int, spec, limit: int = 0, overrides: list[str] | tuple = (),
          command: str = "", aim: bool = True, progress: bool = False) -> dict[str, Any]:
    """Run (or reuse) the ensemble; write its JSON, tables, plots and Aim run; returns what it wrote."""
    spec.check()
    members, notes = pick_members(sweep, top)
    top = len(dict.fromkeys(m.group for m in members))  # --top beyond the configurations there are: the same ensemble
    key = ensemble_key(members, spec, limit, list(overrides))
    out = sweep.dir / ENSEMBLES / f"top{top}-{key}"
    data = read_result(out)
    reused = data is not None and data.get("ensemble", {}).get("key") == key
    if not reused:
        from trm_core.infer.engine import run  # torch: the engine, when it runs

        result = run([m.checkpoint for m in members], spec, list(overrides), limit, progress=progress, prefixes=True)
        data = result.to_json()
        data["notes"] = notes + data["notes"]
        data["ensemble"] = {"key": key, "sweep": sweep.name, "metric": sweep.metric, "mode": sweep.mode, "top": top,
                            "members": [dataclasses.asdict(m) for m in members], "command": command,
                            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / RESULT, json.dumps(data, indent=1) + "\n")
    written = write_derived(out, data)
    aim_line = ""
    if aim:
        stored = (read_json_dict(out / "aim_run.json") or {}).get("hash")
        aim_line = f"Aim: run {stored} (tag ensemble), attached before" if reused and stored else attach(sweep, out, data)
    return {"dir": out, "data": data, "reused": reused, "files": written, "aim_line": aim_line}


def long_table(data: dict[str, Any]) -> pd.DataFrame:
    """One row per (first m checkpoints, depth, breadth, rule): the export ensemble.csv/.parquet."""
    cols = ["checkpoints", "members", "depth", "breadth", "rule", "ceiling", "exact_acc", "cell_acc", "avg_nfe",
            "selection_failures", "wall_s"]
    return pd.DataFrame(data["by_checkpoints"], columns=cols)


def write_derived(out: Path, data: dict[str, Any]) -> list[Path]:
    """ensemble.csv/.parquet and plots/*.png, drawn from the JSON (seconds; also when it is reused, so a
    file deleted since is back)."""
    from trm_core.infer.plots import write_plots  # matplotlib, as the rest of the engine: when it runs

    return write_table(long_table(data), out, "ensemble") + write_plots(data, out / "plots")


def attach(sweep: rd.Sweep, out: Path, data: dict[str, Any]) -> str:
    """The ensemble as an Aim run tagged `ensemble` in the sweep's experiment (its tables and plots)."""
    s = data["settings"]
    big_d, big_b = max(s["depths"]), max(s["breadths"])
    summary = {"key": data["ensemble"]["key"], "top": data["ensemble"]["top"], "checkpoints": len(data["checkpoints"]),
               "depth": big_d, "breadth": big_b, "n_puzzles": data["n_puzzles"],
               **{r["rule"]: {"exact_acc": r["exact_acc"], "avg_nfe": r["avg_nfe"]} for r in data["results"]
                  if r["depth"] == big_d and r["breadth"] == big_b}}
    images = {p.stem: p for p in sorted((out / "plots").glob("*.png"))}
    markdown = to_markdown(blocks_of(data, out, level=1), out)
    _, line = attach_to_aim(sweep.record, f"{sweep.name}/ensemble/{out.name}", markdown, images, summary,
                            out / "aim_run.json", tag="ensemble")
    return line


def ensemble_command(args) -> int:
    """`python -m sweeper ensemble NAME ...` (flags: sweeper/cli.py)."""
    from trm_core.infer.cli import check_outputs, infer_spec  # torch: the engine's flags, checked
    from trm_core.infer.plots import write_plots  # matplotlib

    spec = infer_spec(args).check()
    if args.limit < 0:
        raise UserError(f"--limit must be >= 0, but got {args.limit}")
    check_outputs(args)
    sweep = rd.load(args.sweep, args.storage)
    command = "python -m sweeper " + shlex.join(getattr(args, "argv", None) or ["ensemble", args.sweep])
    result = build(sweep, args.top, spec, args.limit, overrides(args), command, aim=not args.no_aim, progress=True)
    out, data = result["dir"], result["data"]
    if result["reused"]:
        print(f"reused: computed {data['ensemble']['created']} with the same checkpoints and settings ({out / RESULT})")
    print(to_markdown(blocks_of(data, out)[:6], out).rstrip())
    if args.json:
        write_text_atomic(Path(args.json).expanduser(), json.dumps(data, indent=1) + "\n")
        print(f"json: {args.json}")
    if args.plot:
        print(f"plots: {', '.join(str(p) for p in write_plots(data, args.plot))}")
    print(f"written: {out} ({', '.join(p.name for p in result['files'] if p.suffix != '.png')}, plots/)")
    if result["aim_line"]:
        print(result["aim_line"])
    print(f"report: python -m sweeper report {sweep.name} shows it")
    return 0
