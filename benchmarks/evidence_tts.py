"""Test-time evidence over seeds (a benchmark, not a test): run `python -m trm_core eval` on the final
checkpoint of every seed of a sweep's arms and report each (depth, breadth, rule) as mean +- std over
seeds with a 95% bootstrap interval, and paired differences against one reference cell.

    python benchmarks/evidence_tts.py runs/sweeps/hard_methods_cpu \\
        --arms "TRM=recursion.latent_init=fixed,recursion.damping=0.0,recursion.depth_schedule=constant;RI+NI=recursion.damping=0.05" \\
        --against depth=8,rule=last --jobs 2 --out runs/evidence/depth.json -- --depth 8,16,32,64 --select last

- An arm is `NAME=key=value,key=value`: the finished trials whose sampled parameters (results.csv's
  `param:` columns) equal every value; arms are separated by `;`.
- Every flag after `--` goes to `trm_core eval` unchanged (--depth, --breadth, --act, --select, --limit,
  --transforms, --noise-beta, --seed ...). `--ensemble` evaluates each arm's seeds as one ensemble
  (members = seeds) instead of one checkpoint at a time; then the table has one row per cell.
- `--against depth=D,breadth=B,rule=R` (any subset; the rest must then be unique) adds, per arm and
  cell, the mean of the per-seed differences to that cell with its bootstrap interval: the paired
  comparison "more depth / more breadth / another rule helps the same model".
- `--jobs N` runs N evaluations at once, each on cores / N threads. Wall seconds are printed but
  depend on the load; NFE (network evaluations per puzzle) does not.
- `--plot FILE.png` draws exact accuracy (mean over seeds, bars: the 95% interval) against the axis
  that varies (breadth if several, else depth), one line per arm and rule;
  `--replot JSON --plot FILE.png [--plot-rules last]` redraws from a written `--out` without evaluating.

The statistics are the reports' own (sweeper/report/stats.py: sample std, 10,000-resample percentile
bootstrap; with 4 seeds read the interval as a description of the seeds).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sweeper.report.stats import describe  # noqa: E402


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit code 2."""
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def parse_arms(text: str) -> dict[str, dict[str, str]]:
    arms = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, rest = part.partition("=")
        pairs = {}
        for kv in filter(None, rest.split(",")):
            key, eq, value = kv.partition("=")
            if not eq:
                fail(f"an arm is NAME=key=value,key=value, but got '{part}'")
            pairs[key.strip()] = value.strip()
        arms[name.strip()] = pairs
    if not arms:
        fail(f"--arms needs at least one NAME=key=value, but got '{text}'")
    return arms


def same_value(a: str, b: str) -> bool:
    """results.csv's text against an arm's: numbers by value (0.0 == 0), anything else as text."""
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def finished_rows(sweep: Path, name: str, wanted: dict[str, str]) -> list[dict[str, str]]:
    """results.csv rows of the finished trials whose sampled parameters equal every value of `wanted`;
    a parameter the sweep does not have, or an arm that matches nothing, is refused."""
    rows = list(csv.DictReader((sweep / "results.csv").read_text().splitlines()))
    missing = [k for k in wanted if rows and f"param:{k}" not in rows[0]]
    if missing:
        fail(f"arm {name}: {sweep}/results.csv has no parameter {missing[0]}")
    out = [r for r in rows if r["status"] == "done" and all(same_value(r[f"param:{k}"], v) for k, v in wanted.items())]
    if not out:
        fail(f"arm {name} ({wanted}) matches no finished trial of {sweep}")
    return out


def latest_checkpoint(trial_dir: Path) -> Path:
    ckpts = sorted(trial_dir.glob("checkpoint_*/checkpoint.pt"))
    if not ckpts:
        fail(f"{trial_dir} has no checkpoint_*/checkpoint.pt")
    return ckpts[-1]


def select(sweep: Path, name: str, wanted: dict[str, str]) -> list[tuple[int, Path]]:
    """(seed, final checkpoint) of each finished trial of the arm, by seed."""
    return sorted((int(float(r["seed"])), latest_checkpoint(sweep / "tune" / f"trial_{r['trial_id']}"))
                  for r in finished_rows(sweep, name, wanted))


def run_eval(ckpts: list[Path], flags: list[str], threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        cmd = [sys.executable, "-m", "trm_core", "eval", *map(str, ckpts), *flags, "--json", str(out),
               "--set", f"train.cpu_threads={threads}"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit code {proc.returncode}"
            fail(f"trm_core eval of {', '.join(map(str, ckpts))} failed: {last}")
        return json.loads(out.read_text())


def parse_against(text: str) -> dict:
    out = {}
    for kv in filter(None, text.split(",")):
        k, _, v = kv.partition("=")
        if k not in ("depth", "breadth", "rule"):
            fail(f"--against takes depth=, breadth= and rule=, but got '{kv}'")
        out[k] = v if k == "rule" else int(v)
    return out


def fmt(d: dict, scale: float = 100.0, digits: int = 1) -> str:
    if d["n"] == 0:
        return "n/a"
    s = f"{d['mean'] * scale:.{digits}f}"
    if d["n"] >= 2:
        s += f" +- {d['std'] * scale:.{digits}f} [{d['ci_low'] * scale:.{digits}f}, {d['ci_high'] * scale:.{digits}f}]"
    return s


def plot(table: list[dict], path: Path, title: str) -> None:
    import matplotlib  # only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = "breadth" if len({r["breadth"] for r in table}) > 1 else "depth"
    fig, ax = plt.subplots(figsize=(7, 4.2))
    lines: dict[tuple, list] = {}
    for r in table:
        lines.setdefault((r["arm"], r["rule"]), []).append(r)
    arms = list(dict.fromkeys(a for a, _ in lines))
    rules = list(dict.fromkeys(r for _, r in lines))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for (arm, rule), rows in lines.items():  # colour by rule and style by arm (one rule: colour by arm)
        rows.sort(key=lambda r: r[axis])
        if len({r[axis] for r in rows}) < 2:
            continue
        x = [r[axis] for r in rows]
        y = [100 * r["exact_acc"]["mean"] for r in rows]
        lo = [100 * (r["exact_acc"]["mean"] - r["exact_acc"]["ci_low"]) for r in rows]
        hi = [100 * (r["exact_acc"]["ci_high"] - r["exact_acc"]["mean"]) for r in rows]
        ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=f"{arm} {rule}",
                    color=colors[(rules.index(rule) if len(rules) > 1 else arms.index(arm)) % len(colors)],
                    linestyle=styles[arms.index(arm) % len(styles)] if len(rules) > 1 else "-")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r[axis] for r in table}), [str(v) for v in sorted({r[axis] for r in table})])
    ax.set_xlabel(axis)
    ax.set_ylabel("exact %, mean over seeds (95% CI)")
    ax.set_title(textwrap.fill(title, 90), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    argv = sys.argv[1:]
    eval_flags = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path, nargs="?", help="a sweep's folder (STORAGE/NAME, holding results.csv and tune/)")
    p.add_argument("--arms", help="NAME=key=value,key=value;NAME=...")
    p.add_argument("--ensemble", action="store_true", help="evaluate each arm's seeds as one ensemble")
    p.add_argument("--against", default="", help="depth=D,breadth=B,rule=R: paired differences to this cell")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, help="write every number as JSON")
    p.add_argument("--plot", type=Path, help="draw accuracy against breadth (or depth) to this PNG")
    p.add_argument("--replot", type=Path, help="with --plot: redraw from a JSON written by --out, evaluate nothing")
    p.add_argument("--plot-rules", default="", help="with --replot: only these rules (comma list)")
    args = p.parse_args(argv)
    if args.replot:
        if not args.plot:
            fail("--replot needs --plot FILE.png")
        data = json.loads(args.replot.read_text())
        rows = [r for r in data["table"] if not args.plot_rules or r["rule"] in args.plot_rules.split(",")]
        plot(rows, args.plot, f"{Path(data['sweep']).name}: trm_core eval {' '.join(data['eval_flags'])}")
        return
    if args.sweep is None or not args.arms:
        fail("SWEEP and --arms are needed (or --replot JSON --plot FILE.png)")
    if not (args.sweep / "results.csv").is_file():
        fail(f"SWEEP must be a sweep's folder holding results.csv, but got '{args.sweep}'")
    arms = parse_arms(args.arms)
    against = parse_against(args.against)
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))

    jobs = []  # (arm, seeds, checkpoints)
    for name, wanted in arms.items():
        picked = select(args.sweep, name, wanted)
        if args.ensemble:
            jobs.append((name, [s for s, _ in picked], [c for _, c in picked]))
        else:
            jobs.extend((name, [s], [c]) for s, c in picked)
    print(f"{len(jobs)} evaluations ({args.jobs} at a time, {threads} thread(s) each): trm_core eval {' '.join(eval_flags)}",
          flush=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outs = list(pool.map(lambda j: run_eval(j[2], eval_flags, threads), jobs))
    print(f"done in {time.perf_counter() - t0:.0f} s", flush=True)

    # cells[arm][(depth, breadth, rule)] = list of (seed-label, exact, nfe)
    cells: dict[str, dict[tuple, list]] = {}
    diags: dict[str, list] = {}
    for (name, seeds, _), out in zip(jobs, outs):
        label = "+".join(map(str, seeds))
        for r in out["results"]:
            cells.setdefault(name, {}).setdefault((r["depth"], r["breadth"], r["rule"]), []).append(
                (label, r["exact_acc"], r["avg_nfe"]))
        diags.setdefault(name, []).append({"seeds": seeds, "n_puzzles": out["n_puzzles"], **out["diagnostics"]})

    table = []
    print("\n| arm | depth | breadth | rule | seeds | exact % (mean +- std [95% CI]) | avg NFE |"
          + (" paired diff to the reference cell, points [95% CI] |" if against else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if against else ""))
    for name, by_cell in cells.items():
        ref = None
        if against:
            hits = [c for c in by_cell if all(c[("depth", "breadth", "rule").index(k)] == v for k, v in against.items())]
            if len(hits) != 1:
                fail(f"--against {args.against} must name exactly one cell of arm {name}, but it names {len(hits)}")
            ref = {lab: acc for lab, acc, _ in by_cell[hits[0]]}
        for cell, vals in by_cell.items():
            acc = describe([a for _, a, _ in vals])
            nfe = describe([n for _, _, n in vals])
            row = {"arm": name, "depth": cell[0], "breadth": cell[1], "rule": cell[2], "seeds": [lab for lab, _, _ in vals],
                   "exact_acc": acc, "avg_nfe": nfe, "per_seed": [a for _, a, _ in vals]}
            line = f"| {name} | {cell[0]} | {cell[1]} | {cell[2]} | {len(vals)} | {fmt(acc)} | {nfe['mean']:.1f} |"
            if ref is not None:
                diff = describe([a - ref[lab] for lab, a, _ in vals if lab in ref])
                row["paired_diff"] = diff
                line += " - |" if all(lab in ref and a == ref[lab] for lab, a, _ in vals) and cell == hits[0] else f" {fmt(diff)} |"
            table.append(row)
            print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"sweep": str(args.sweep), "arms": arms, "eval_flags": eval_flags,
                                   "ensemble": args.ensemble, "against": against, "table": table,
                                   "diagnostics": diags}, indent=1))
        os.replace(tmp, args.out)
        print(f"\nwrote {args.out}")
    if args.plot:
        plot(table, args.plot, f"{args.sweep.name}: trm_core eval {' '.join(eval_flags)}")


if __name__ == "__main__":
    main()
