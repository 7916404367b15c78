"""`python -m sweeper report NAME`: seed statistics, costs, plots and exports of one sweep (all of its
phases). Comparisons of two sweeps or two configurations: sweeper/report/compare.py.

Only final trials (report/data.py: trained to the end, finite metric) enter the statistics; every other
trial is listed and counted. Statistics: report/stats.py (sample std, ddof = 1; seeded bootstrap).
Metric keys with three or more parts (`eval/halt_first/exact_acc`, `eval_tts/<rule>/exact_acc`,
`train/win_rate/0`) are grouped by pattern: one table per namespace, a row per middle part and a
column per last part. Exports and their schema: docs/REPORTS.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trm_core.errors import write_text_atomic

from sweeper.aim.attach import attach_report
from sweeper.report import data as rd
from sweeper.report import pareto, plots, stats
from sweeper.report.ensemble_view import ensemble_blocks
from sweeper.report.metrics import metric_blocks
from sweeper.report.render import Heading, Image, Para, Table, ci, fmt, to_html, to_markdown
from sweeper.run.sweeps import phase_dirs, read_phase
from sweeper.run.table import to_parquet

COST = [("wall_s", "wall s"), ("device_s", "{device} s"), ("step", "steps"),
        (rd.SPEED_KEY, "puzzle-steps/s"), (rd.ACT_STEPS_KEY, "avg ACT steps (eval)"), (rd.NFE_KEY, "avg NFE (eval)")]
SINGLE = "†"
"""Marks a configuration measured on one seed in the ranking table."""
STATS_NOTE = ("Statistics over seeds: mean, sample standard deviation (ddof = 1; n/a with one seed), 95% percentile"
              " bootstrap interval of the mean ({resamples:,} resamples, seed {seed}), min, max. Only trials trained to"
              " the end with a finite value count; with 2-5 seeds the interval cannot reach past the observed"
              " min and max, so read it as a description of the seeds, not a guarantee.")


# ---------------------------------------------------------------------------------------------
# Tables


def final_trials(sweep: rd.Sweep) -> tuple[pd.DataFrame, int]:
    """Final trials, one per (configuration, seed): a later phase's trial replaces an earlier one."""
    final = sweep.trials[sweep.trials["outcome"] == rd.FINAL]
    deduped = final.drop_duplicates(["group", "seed"], keep="last")
    return deduped, len(final) - len(deduped)


def group_table(sweep: rd.Sweep, final: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One row per configuration with a final trial: the metric's statistics, seeds, cost means,
    and how many of its trials are not counted; ranked best first (NaN last), replicated
    configurations (2 or more seeds) before single-seed ones: one seed's score flatters the
    configuration a search picked, so it ranks after every replicated one (main_blocks marks it)."""
    rows = []
    for g, part in final.groupby("group", sort=False):
        row = {"group": g, **stats.describe(part[sweep.metric], seed), "seeds": sorted(int(s) for s in part["seed"])}
        for col, _ in COST:
            row[col] = float(pd.to_numeric(part[col], errors="coerce").mean()) if col in part else np.nan
        rows.append(row)
    table = pd.DataFrame(rows, columns=["group", "n", "mean", "std", "ci_low", "ci_high", "min", "max", "seeds"]
                         + [c for c, _ in COST])
    other = sweep.trials[sweep.trials["outcome"] != rd.FINAL].groupby("group").size()
    table["not_counted"] = [int(other.get(g, 0)) for g in table["group"]]
    single = table["n"] < 2
    table = (table.assign(_single=single).sort_values(["_single", "mean", "n"], ascending=[True, sweep.mode == "min", False],
                                                      na_position="last", kind="stable").drop(columns="_single"))
    return table.set_index("group")


def summary_long(sweep: rd.Sweep, final: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every (configuration, metric): n, mean, std, ci_low, ci_high, min, max; the export summary.*."""
    rows = []
    metrics = [m for m in sweep.metric_columns() if m != "model/n_params"] + ["wall_s", "device_s"]
    for g, part in final.groupby("group", sort=False):
        for m in metrics:
            values = pd.to_numeric(part[m], errors="coerce").dropna()
            if len(values):
                rows.append({"group": g, "metric": m, **stats.describe(values, seed)})
    return pd.DataFrame(rows, columns=["group", "metric", "n", "mean", "std", "ci_low", "ci_high", "min", "max"])


# ---------------------------------------------------------------------------------------------
# Blocks


def status_line(sweep: rd.Sweep) -> str:
    counts = sweep.trials["outcome"].value_counts()
    parts = [f"{int(counts.get(o, 0))} {o.replace('_', ' ')}" for o in
             (rd.FINAL, rd.STOPPED, rd.ERROR, rd.DIVERGED, rd.NAN_METRIC, rd.UNFINISHED) if counts.get(o, 0)]
    by_phase = ", ".join(f"{p} {int((sweep.trials['phase'] == p).sum())}" for p in sweep.phases
                         if (sweep.trials.get("phase", pd.Series(dtype=str)) == p).any())
    return (f"{len(sweep.trials)} trials ({by_phase or 'none yet'}): {', '.join(parts) or 'none'}."
            f" Metric `{sweep.metric}` ({sweep.mode}).")


def state_lines(sweep: rd.Sweep) -> list[str]:
    """Say when the numbers are not the whole sweep: still running, or interrupted (search or a replicate phase)."""
    if sweep.running:
        return ["Still running: this report covers the trials finished so far; make it again when the sweep ends."]
    lines = []
    if sweep.record.get("status") == "interrupted":
        lines.append(f"Interrupted: this report covers the trials finished so far; `python -m sweeper resume {sweep.name}`"
                     " finishes the sweep.")
    for phase, d in phase_dirs(sweep.dir)[1:]:
        rec = read_phase(d) or {}
        if rec.get("status") not in (None, "finished"):
            sets = "".join(f" --set {x}" for x in rec.get("sets", []))
            lines.append(f"{phase} is {rec['status']}: `python -m sweeper replicate {sweep.name} --top {rec.get('top')}"
                         f" --seeds {','.join(map(str, rec.get('seeds', [])))}{sets}` finishes it.")
    return lines


def main_blocks(sweep: rd.Sweep, table: pd.DataFrame, params: dict, dupes: int) -> list:
    blocks: list = [Heading(2, f"{sweep.metric} by configuration")]
    groups = list(table.index)
    if not groups:
        return blocks + [Para("No configuration has a trial trained to the end yet: nothing to summarise.")]
    vary, const = rd.varying(params, groups)
    if const:
        blocks.append(Para("Same in every configuration shown: " + ", ".join(f"`{k}` = {fmt(v)}" for k, v in const.items())))
    header = ["#", "config", *vary, "n", "mean", "std", "95% CI", "min", "max", "seeds", "not counted"]
    rows = []
    for rank, (g, r) in enumerate(table.iterrows(), 1):
        p = params.get(g, {})
        n = f"{r['n']} {SINGLE}" if r["n"] == 1 else str(r["n"])
        rows.append([str(rank), g, *[fmt(p[k]) if k in p else "–" for k in vary], n, fmt(r["mean"]),
                     fmt(r["std"]), ci(r["ci_low"], r["ci_high"]), fmt(r["min"]), fmt(r["max"]),
                     ",".join(map(str, r["seeds"])), str(r["not_counted"]) if r["not_counted"] else ""])
    blocks.append(Table(header, rows))
    if (table["n"] == 1).any():
        blocks.append(Para(f"{SINGLE} one seed: not replicated, ranked after every configuration with two or more seeds;"
                           f" `python -m sweeper replicate {sweep.name} --top K --seeds 0-3` adds seeds."))
    if vary and any(any(k not in params.get(g, {}) for k in vary) for g in groups):
        blocks.append(Para("–: a conditional parameter the configuration did not sample (its base value applies)."))
    if dupes:
        blocks.append(Para(f"{dupes} (configuration, seed) pair(s) were trained to the end in two phases;"
                           " the later phase's trial is the one counted."))
    return blocks


def cost_blocks(sweep: rd.Sweep, table: pd.DataFrame) -> list:
    cols = [(c, label.format(device=sweep.device)) for c, label in COST if table[c].notna().any()]
    if table.empty or not cols:
        return []
    cpu, gpu = sweep.resources()
    reserved = f"{gpu:g} GPU" if gpu > 0 else f"{cpu:g} CPU{'s' * (cpu != 1)}"
    t = sweep.trials
    rows = [[g, *[fmt(r[c]) for c, _ in cols]] for g, r in table.iterrows()]
    total = pd.to_numeric(t["device_s"], errors="coerce").sum()
    return [Heading(2, "Cost (mean per final trial)"),
            Para(f"wall s: trial end minus start; {sweep.device} s: wall s x {reserved} reserved per trial"
                 f" (all trials of the sweep: {fmt(total)} {sweep.device} s); puzzle-steps/s: the trainer's last"
                 " log window; ACT steps / NFE: per held-out puzzle."),
            Table(["config", *[label for _, label in cols]], rows)]


def not_counted_blocks(sweep: rd.Sweep) -> list:
    t = sweep.trials
    blocks: list = []
    stopped = t[t["outcome"] == rd.STOPPED]
    if len(stopped):
        rows = [[r["group"], fmt(r["seed"]), r["phase"], f"{fmt(r['step'])}/{fmt(r.get('steps_target'))}",
                 fmt(r[sweep.metric])] for _, r in stopped.iterrows()]
        blocks += [Heading(3, f"Stopped early ({len(stopped)}): not final values, not in the statistics"),
                   Para("Ended before train.steps (ASHA, a time budget, or an interrupted sweep); the value is the one"
                        " at the step shown."),
                   Table(["config", "seed", "phase", "step", sweep.metric], rows)]
    failed = t[t["outcome"].isin([rd.ERROR, rd.DIVERGED, rd.NAN_METRIC])]
    if len(failed):
        rows = [[r["group"], fmt(r["seed"]), r["phase"], r["outcome"].replace("_", " "), fmt(r[sweep.metric]),
                 "" if rd.is_missing(r["error"]) else str(r["error"])[:160]] for _, r in failed.iterrows()]
        blocks += [Heading(3, f"Errored, diverged or without a value ({len(failed)}): excluded"),
                   Table(["config", "seed", "phase", "outcome", sweep.metric, "error"], rows)]
    unfinished = t[t["outcome"] == rd.UNFINISHED]
    if len(unfinished):
        said = unfinished["status"].replace({"done": "ended before its first report"})
        states = ", ".join(f"{n} {s}" for s, n in said.value_counts().items())
        blocks.append(Para(f"Not finished ({len(unfinished)}: {states}): not in this report's statistics."))
    return ([Heading(2, "Trials not counted")] + blocks) if blocks else []


# ---------------------------------------------------------------------------------------------
# Writing


def write_table(df: pd.DataFrame, out: Path, stem: str) -> list[Path]:
    """stem.csv and stem.parquet, each written to a temp file and renamed."""
    paths = []
    for suffix, write in ((".csv", lambda p: df.to_csv(p, index=False)), (".parquet", lambda p: to_parquet(df, p))):
        path = out / f"{stem}{suffix}"
        tmp = out / f".{path.name}.tmp{os.getpid()}"
        write(tmp)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def export_trials(sweep: rd.Sweep) -> pd.DataFrame:
    lead = ["phase", "trial_id", "group", "seed", "status", "outcome", "step", sweep.metric]
    df = sweep.trials.drop(columns=["trial_dir"], errors="ignore")
    return df[[c for c in lead if c in df] + [c for c in df.columns if c not in lead]]


def write_documents(blocks: list, out: Path, title: str, formats: list[str]) -> dict[str, Path]:
    written = {}
    if "md" in formats:
        written["md"] = out / "report.md"
        write_text_atomic(written["md"], to_markdown(blocks, out))
    if "html" in formats:
        written["html"] = out / "report.html"
        write_text_atomic(written["html"], to_html(blocks, title))
    return written


def attach_to_aim(record: dict[str, Any], name: str, markdown: str, images: dict[str, Path],
                  summary: dict[str, Any], state_file: Path, tag: str = "report") -> tuple[str | None, str]:
    """The report's (or an ensemble's: tag `ensemble`) table and plots on the sweep's Aim experiment
    (sweeper/aim/attach.py does the writing); returns the run's hash (None when the repo is gone) and a
    line saying where."""
    repo = record.get("aim_repo")
    spec = record.get("spec") or {}
    experiment = (spec.get("aim") or {}).get("experiment") or spec.get("name") or record.get("name")
    if not repo or not Path(repo).is_dir():
        return None, f"Aim: repo {repo or '(none recorded)'} not found; {tag} not attached"
    run_hash = attach_report(repo, experiment, name, markdown, images, summary, state_file,
                             sweep=record.get("name"), tag=tag)
    return run_hash, f"Aim: run {run_hash} ('{name}', tag {tag}) in experiment {experiment} of {repo}"


def json_safe(v: Any) -> Any:
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return rd.plain(v)


def make_report(sweep: rd.Sweep, out_dir: Path, formats: list[str], *, seed: int = 0, aim: bool = True) -> dict[str, Any]:
    """Compute, plot, write and attach the report of one sweep; returns what it wrote."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final, dupes = final_trials(sweep)
    table = group_table(sweep, final, seed)
    params = rd.group_params(sweep)
    groups = list(table.index)
    steps = rd.load_steps(sweep)
    images = make_plots(sweep, final, table, steps, out_dir / "plots")
    front = pareto.pareto_table(sweep, final, seed)  # empty with one objective
    pareto_section, pareto_images = pareto.pareto_blocks(sweep, final, seed, out_dir / "plots", table=front)
    images.update(pareto_images)  # "pareto": in the Plots section and on Aim as plot/pareto
    blocks: list = [Heading(1, f"Sweep report: {sweep.name}")]
    blocks += [Para(line) for line in state_lines(sweep)]
    blocks += [Para(f"`{sweep.dir}` (status {sweep.record.get('status', 'unknown')}). {status_line(sweep)}"),
               Para(STATS_NOTE.format(resamples=stats.N_RESAMPLES, seed=seed))]
    blocks += main_blocks(sweep, table, params, dupes)
    blocks += pareto_section
    blocks += cost_blocks(sweep, table)
    blocks += metric_blocks(sweep, final, groups, seed)
    blocks += ensemble_blocks(sweep)
    blocks += not_counted_blocks(sweep)
    if images:
        blocks.append(Heading(2, "Plots"))
        blocks += [Image(path, alt) for alt, path in images.values()]
    exports = (write_table(export_trials(sweep), out_dir, "trials") + write_table(steps, out_dir, "steps")
               + write_table(summary_long(sweep, final, seed), out_dir, "summary")
               + (write_table(front, out_dir, "pareto") if not front.empty else []))
    blocks += [Heading(2, "Files"), Para("Trial-level `trials.csv/.parquet`, step-level `steps.csv/.parquet`,"
                                         " per configuration and metric `summary.csv/.parquet`, with several objectives the Pareto front"
                                         " `pareto.csv/.parquet`; schema: docs/REPORTS.md.")]
    docs = write_documents(blocks, out_dir, f"Sweep report: {sweep.name}", formats)
    markdown = to_markdown(blocks, out_dir)
    head = {"sweep": sweep.name, "metric": sweep.metric, "mode": sweep.mode, "running": sweep.running,
            "configs": [{"config_id": g, **{k: json_safe(table.loc[g, k]) for k in ("n", "mean", "std", "ci_low", "ci_high")}}
                        for g in groups[:20]]}
    aim_hash, aim_line = attach_to_aim(sweep.record, f"{sweep.name}/report", markdown, {k: p for k, (_, p) in images.items()},
                                       head, out_dir / "aim_run.json") if aim else (None, "")
    return {"dir": out_dir, "docs": docs, "exports": exports, "images": images, "table": table,
            "markdown": markdown, "aim_run": aim_hash, "aim_lines": [aim_line] if aim_line else [], "blocks": blocks}


def make_plots(sweep: rd.Sweep, final: pd.DataFrame, table: pd.DataFrame, steps: pd.DataFrame,
               plot_dir: Path, top: int = 12, curves_top: int = 5) -> dict[str, tuple[str, Path]]:
    """key -> (caption, PNG path). Empty when no configuration has a final trial."""
    groups = list(table.index)
    if not groups:
        return {}
    shown = groups[:top]
    more = f" (best {len(shown)} of {len(groups)})" if len(groups) > len(shown) else ""
    values = {g: final.loc[final["group"] == g, sweep.metric].to_numpy(float) for g in shown}
    st = sweep.trials[sweep.trials["outcome"] == rd.STOPPED]
    stopped = {g: st.loc[st["group"] == g, sweep.metric].dropna().to_numpy(float) for g in shown}
    images = {"per_seed": (f"{sweep.metric} per seed by configuration{more}",
                           plots.per_seed(shown, values, stopped, table, sweep.metric, plot_dir / "per_seed.png",
                                          f"{sweep.name}: {sweep.metric} per seed{more}"))}
    final_steps = steps[steps["outcome"] == rd.FINAL] if not steps.empty else steps
    curve = plots.curves(final_steps, groups[:curves_top], sweep.metric, plot_dir / "curves.png",
                         f"{sweep.name}: learning curves, mean ± 1 std over seeds")
    if curve:
        images["curves"] = (f"learning curves of the best {min(curves_top, len(groups))} configurations", curve)
    x = "device_s" if table["device_s"].notna().any() else "wall_s"
    label = f"{sweep.device}-seconds per trial (mean)" if x == "device_s" else "wall seconds per trial (mean)"
    cost = plots.cost(table, sweep.metric, x, label, plot_dir / "cost.png", f"{sweep.name}: {sweep.metric} vs cost")
    if cost:
        images["cost"] = (f"{sweep.metric} against cost", cost)
    return images
