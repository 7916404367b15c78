"""An ensemble as `sweeper ensemble` prints it and `sweeper report` shows it: its tables and plots, read
from `SWEEP/ensembles/*/ensemble.json` (written by sweeper/report/ensemble.py)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from sweeper.report import data as rd
from sweeper.report.render import Heading, Image, Para, Table, fmt
from sweeper.run.sweeps import read_json_dict

ENSEMBLES = "ensembles"
RESULT = "ensemble.json"


def read_result(out: Path) -> dict[str, Any] | None:
    return read_json_dict(out / RESULT)  # absent, or cut short: computed again


def accuracy_table(data: dict[str, Any]) -> Table:
    """Rule x depth at the whole ensemble and the largest breadth (as the README's 4-seed table), with
    each checkpoint alone (mean +/- sample std over the checkpoints) on top, and avg NFE."""
    s = data["settings"]
    depths, big_b = s["depths"], max(s["breadths"])
    rows = [r for r in data["results"] if r["breadth"] == big_b]
    views = {v["depth"]: v for v in data["diagnostics"]["views"] if v["breadth"] == big_b}
    nfe_cols = [depths[0], depths[-1]] if len(depths) > 1 else depths
    header = ["exact accuracy", *[f"D = {d}" for d in depths], f"avg NFE at D = {' / '.join(map(str, nfe_cols))}"]
    alone = []
    for d in depths:
        accs = views[d]["checkpoint_exact_acc"]
        sd = f" ± {statistics.stdev(accs):.4f}" if len(accs) > 1 else ""
        alone.append(f"{statistics.fmean(accs):.4f}{sd}")
    n_ckpt = len(data["checkpoints"])
    # each checkpoint alone is its first member (transform 0, restart 0): d steps, or up to d with ACT
    alone_nfe = " / ".join(f"{'≤ ' if s['act'] else ''}{d}" for d in nfe_cols)
    out = [[f"one checkpoint alone (its first member; mean ± std of {n_ckpt})", *alone, alone_nfe]]
    for rule in s["select"]:
        mine = {r["depth"]: r for r in rows if r["rule"] == rule}
        name = rule + (" (ceiling)" if mine[depths[0]]["ceiling"] else "")
        out.append([name, *[f"{mine[d]['exact_acc']:.4f}" for d in depths],
                    " / ".join(f"{mine[d]['avg_nfe']:.1f}" for d in nfe_cols)])
    return Table(header, out)


def size_table(data: dict[str, Any]) -> Table:
    """Exact accuracy of each rule for the first m checkpoints, at the largest depth and breadth."""
    s = data["settings"]
    big_d, big_b = max(s["depths"]), max(s["breadths"])
    rows = [r for r in data["by_checkpoints"] if r["depth"] == big_d and r["breadth"] == big_b]
    ms = sorted({r["checkpoints"] for r in rows})
    members = {r["checkpoints"]: r["members"] for r in rows}
    out = []
    for rule in s["select"]:
        mine = {r["checkpoints"]: r for r in rows if r["rule"] == rule}
        out.append([rule + (" (ceiling)" if mine[ms[0]]["ceiling"] else ""),
                    *[f"{mine[m]['exact_acc']:.4f} ({mine[m]['avg_nfe']:.0f})" for m in ms]])
    return Table(["rule", *[f"first {m} ({members[m]} member{'s' * (members[m] > 1)})" for m in ms]], out)


def describe(data: dict[str, Any]) -> str:
    s, e = data["settings"], data["ensemble"]
    groups = list(dict.fromkeys(m["group"] for m in e["members"]))
    return (f"top {e['top']} configuration(s) by `{e['metric']}` ({', '.join(groups)}): {len(data['checkpoints'])}"
            f" checkpoint(s) x {len(data['transforms'])} transform(s) ({', '.join(data['transforms'])}) x breadth"
            f" {max(s['breadths'])}, depth {', '.join(map(str, s['depths']))}, ACT {'on' if s['act'] else 'off'},"
            f" {data['n_puzzles']} held-out puzzles ({data['task']})")


def blocks_of(data: dict[str, Any], out: Path, level: int = 2) -> list:
    e, s = data["ensemble"], data["settings"]
    blocks: list = [Heading(level, f"Ensemble {out.name}"), Para(describe(data) + "."),
                    accuracy_table(data),
                    Para("Avg NFE: supervision steps per puzzle summed over the members a rule reads; the oracle is"
                         " the ceiling (right when any member is right), never deployable. Command: `" + e["command"] + "`.")]
    if len({r["checkpoints"] for r in data.get("by_checkpoints", [])}) > 1:
        blocks += [Para(f"By ensemble size (the first m checkpoints, best configuration first; depth {max(s['depths'])},"
                        " breadth {}): exact accuracy (avg NFE).".format(max(s["breadths"]))), size_table(data)]
    members = [[m["group"], str(m["seed"]), m["phase"], m["trial_id"], fmt(m["value"]), str(m["step"]), m["checkpoint"]]
               for m in e["members"]]
    blocks += [Para("Members:"), Table(["config", "seed", "phase", "trial", e["metric"], "step", "checkpoint"], members)]
    blocks += [Para(f"note: {n}") for n in data.get("notes", [])]
    for name in ("accuracy_vs_members", "accuracy_vs_nfe_by_members", "accuracy_vs_depth", "accuracy_vs_breadth"):
        path = out / "plots" / f"{name}.png"
        if path.exists():
            blocks.append(Image(path, f"{out.name}: {name.replace('_', ' ')}"))
    return blocks


def ensemble_blocks(sweep: rd.Sweep) -> list:
    """`sweeper report`'s section: every ensemble computed for this sweep, oldest first."""
    found = []
    for d in sorted((sweep.dir / ENSEMBLES).glob("top*-*")) if (sweep.dir / ENSEMBLES).is_dir() else []:
        data = read_result(d)
        if data is not None and "ensemble" in data:
            found.append((data["ensemble"].get("created", ""), d, data))
    if not found:
        return []
    blocks: list = [Heading(2, "Ensembles of the sweep's checkpoints"),
                    Para("`python -m sweeper ensemble` evaluated the final checkpoints of the best configurations as one"
                         " test-time ensemble (trm_core/infer); tables: ensemble.csv/.parquet in each folder.")]
    for _, d, data in sorted(found, key=lambda x: (x[0], str(x[1]))):
        blocks += blocks_of(data, d, level=3)
    return blocks
