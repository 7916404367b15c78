"""`python -m sweeper report A B`: B against A, side by side, with the difference, its interval, a
Welch test and the probability of improvement (sweeper/report/stats.py).

A side is a sweep (`NAME` or a path) or a part of one, `NAME:SELECTOR`, where SELECTOR is a
configuration id (`cfg-1a2b3c4d`) or parameter values (`recursion.n_chains=1`, several joined by
commas). When a side holds several configurations, its best one (by mean over final seeds) is the
one compared, and the report says so: picking the best of several on the same seeds flatters it.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from trm_core.errors import UserError

from sweeper.report import data as rd
from sweeper.report import plots, stats
from sweeper.report import report as rp
from sweeper.report.metrics import eval_metrics, families
from sweeper.report.render import NA, Heading, Image, Para, Table, ci, fmt, pm, to_markdown
from sweeper.run.sweeps import find_sweep


@dataclass
class Side:
    label: str          # as typed: NAME or NAME:SELECTOR
    sweep: rd.Sweep
    group: str          # the configuration compared
    candidates: int     # configurations the selection held that have a final trial
    final: pd.DataFrame  # its final trials, one per seed


def _split(text: str, storage: str | None) -> tuple[str, str | None]:
    """'NAME' or 'NAME:SELECTOR' (a sweep path may itself hold ':', so the whole text is tried first)."""
    try:
        find_sweep(text, storage)
        return text, None
    except UserError:
        if ":" not in text:
            raise
    name, selector = text.split(":", 1)
    return name, selector


def _matches(column: pd.Series, value: Any) -> pd.Series:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        numeric = pd.to_numeric(column, errors="coerce")
        return pd.Series(np.isclose(numeric, float(value), rtol=1e-9, atol=0.0), index=column.index) & numeric.notna()
    return column.astype(str) == str(value)


def select(sweep: rd.Sweep, selector: str | None) -> pd.Series:
    """Boolean mask of the sweep's trials a selector picks."""
    t = sweep.trials
    if not selector:
        return pd.Series(True, index=t.index)
    if "=" not in selector:
        mask = t["group"].astype(str).str.startswith(selector)
        if not mask.any():
            raise UserError(f"{sweep.name}:{selector}: no configuration id starts with {selector!r}"
                            f" (ids: {', '.join(sorted(t['group'].unique())[:8])})")
        return mask
    mask = pd.Series(True, index=t.index)
    for part in selector.split(","):
        key, _, raw = part.partition("=")
        col = rd.PARAM + key.strip().removeprefix(rd.PARAM)
        if col not in t:
            known = [c[len(rd.PARAM):] for c in sweep.params]
            raise UserError(f"{sweep.name}:{selector}: {key.strip()!r} is not a parameter of the sweep"
                            f" (parameters: {', '.join(known) or 'none'})")
        mask &= _matches(t[col], yaml.safe_load(raw.strip()))
    if not mask.any():
        raise UserError(f"{sweep.name}:{selector}: no trial has these parameter values")
    return mask


def resolve(text: str, storage: str | None, metric: str | None) -> Side:
    name, selector = _split(text, storage)
    sweep = rd.load(name, storage, metric)
    mask = select(sweep, selector)
    final, _ = rp.final_trials(sweep)
    final = final[final.index.isin(mask[mask].index)]
    if final.empty:
        raise UserError(f"{text}: no trial trained to the end with a finite {sweep.metric}: nothing to compare")
    means = final.groupby("group")[sweep.metric].agg(["mean", "count"])
    means = means.sort_values(["mean", "count"], ascending=[sweep.mode == "min", False])
    group = str(means.index[0])
    return Side(text, sweep, group, len(means), final[final["group"] == group])


def compared_metrics(a: Side, b: Side) -> list[str]:
    """The main metric, A's other objectives (a sweep with several), other eval metrics, per-rule
    families, then cost; each present on both sides."""
    def present(side: Side) -> set[str]:
        return {c for c in side.sweep.metric_columns() if side.final[c].notna().any()}

    both = present(a) & present(b)
    cols = [c for c in a.sweep.metric_columns() if c in both and c != a.sweep.metric]
    fams = [k for ks in families(cols).values() for k, _, _ in ks]
    cost = [c for c, _ in rp.COST if all(c in s.final and s.final[c].notna().any() for s in (a, b))]
    objectives = [m for m in a.sweep.objectives if m in both]
    return list(dict.fromkeys([a.sweep.metric] + objectives + eval_metrics(cols, a.sweep.metric) + fams + cost))


def comparison_table(a: Side, b: Side, seed: int) -> pd.DataFrame:
    rows = []
    for m in compared_metrics(a, b):
        va = pd.to_numeric(a.final[m], errors="coerce").dropna()
        vb = pd.to_numeric(b.final[m], errors="coerce").dropna()
        if m != a.sweep.metric and va.nunique() == 1 and set(va) == set(vb):
            continue  # the same constant on both sides (eval/n_puzzles, steps): nothing to compare
        da, db = stats.describe(va, seed), stats.describe(vb, seed)
        diff = {k: v for k, v in stats.compare(va, vb, seed).items() if k not in ("n_a", "n_b")}
        rows.append({"metric": m, **{f"a_{k}": v for k, v in da.items()}, **{f"b_{k}": v for k, v in db.items()}, **diff})
    return pd.DataFrame(rows)


def _side_text(name: str, s: Side) -> str:
    params = rd.group_params(s.sweep).get(s.group, {})
    chosen = (f"the best of {s.candidates} configurations by mean {s.sweep.metric}, " if s.candidates > 1
              else "configuration ")
    values = ", ".join(f"`{k}` = {fmt(v)}" for k, v in params.items()) or "no parameters"
    return (f"{name} = `{s.label}`: {chosen}{s.group} ({values}); {len(s.final)} seed(s):"
            f" {','.join(str(int(x)) for x in sorted(s.final['seed']))}.")


def task_of(side: Side) -> str | None:
    """The puzzles a side trained on, `sudoku 6x6`, from the trainer's config.yaml of one of its final
    trials (a sweep may search data keys); None when no trial folder holds one."""
    for trial_dir in side.final.get("trial_dir", pd.Series(dtype=str)):
        f = Path(str(trial_dir)) / "trainer" / "config.yaml"  # sweeper.run.trainable: the trainer's out_dir
        try:
            data = (yaml.safe_load(f.read_text()) or {}).get("data") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        return f"{data.get('task')} {data.get('board_size')}x{data.get('board_size')}"
    return None


def task_warning(a: Side, b: Side) -> str | None:
    """Sides trained on different puzzles (4x4 vs 6x6): their numbers measure different tasks."""
    ta, tb = task_of(a), task_of(b)
    if ta and tb and ta != tb:
        return (f"A trained on {ta} puzzles and B on {tb}: their {a.sweep.metric} measure different tasks, so the"
                f" difference below is not a comparison of methods")
    return None


def blocks_for(a: Side, b: Side, table: pd.DataFrame, seed: int, warning: str | None = None) -> list:
    blocks: list = [Heading(1, f"Comparison: {a.label} vs {b.label}"), Para(_side_text("A", a)), Para(_side_text("B", b))]
    if warning:
        blocks.append(Para(f"Warning: {warning}."))
    for name, s in (("A", a), ("B", b)):
        if s.sweep.running:
            blocks.append(Para(f"Still running: {name}'s sweep has unfinished trials; this covers those finished."))
    if a.candidates > 1 or b.candidates > 1:
        blocks.append(Para("A side chosen as the best of several configurations on the same seeds is flattered by"
                           " that choice; re-run it on fresh seeds (`python -m sweeper replicate`) for an unbiased estimate."))
    blocks.append(Para(rp.STATS_NOTE.format(resamples=stats.N_RESAMPLES, seed=seed)
                       + " B − A: difference of means with a two-sample bootstrap interval; Welch's t-test"
                       " (unequal variances); P(B > A): the chance a random seed of B beats one of A, ties half."))
    header = ["metric", "A: mean ± std (n)", "B: mean ± std (n)", "B − A", "95% CI of B − A", "Welch t (df)",
              "p", "P(B > A) [95% CI]"]
    rows = []
    for _, r in table.iterrows():
        welch = NA if math.isnan(r["welch_t"]) else f"{fmt(r['welch_t'], 3)} ({fmt(r['welch_df'], 3)})"
        poi = fmt(r["p_improve"], 3) + ("" if math.isnan(r["p_improve_ci_low"])
                                        else f" {ci(r['p_improve_ci_low'], r['p_improve_ci_high'])}")
        rows.append([r["metric"], pm(r["a_mean"], r["a_std"], r["a_n"]), pm(r["b_mean"], r["b_std"], r["b_n"]),
                     fmt(r["diff"]), ci(r["diff_ci_low"], r["diff_ci_high"]), welch, fmt(r["welch_p"], 3), poi])
    blocks.append(Table(header, rows))
    blocks.append(Para(headline(a, table)))
    return blocks


def headline(a: Side, table: pd.DataFrame) -> str:
    r = table.iloc[0]
    better = r["p_improve"] if a.sweep.mode == "max" else 1 - r["p_improve"]
    word = "higher" if a.sweep.mode == "max" else "lower"
    text = (f"On {r['metric']} ({a.sweep.mode}), B - A = {fmt(r['diff'])} {ci(r['diff_ci_low'], r['diff_ci_high'])};"
            f" a seed of B scores {word} than a seed of A with probability {fmt(better, 3)}")
    if math.isnan(r["welch_p"]):
        return text + "; Welch's test needs two seeds on each side and some variance."
    return text + f"; Welch's test p = {fmt(r['welch_p'], 3)}."


def make_comparison(text_a: str, text_b: str, out_dir: Path | None, formats: list[str], *, storage: str | None = None,
                    metric: str | None = None, seed: int = 0, aim: bool = True) -> dict[str, Any]:
    a = resolve(text_a, storage, metric)
    b = resolve(text_b, storage, metric or a.sweep.metric)
    if b.sweep.metric != a.sweep.metric:
        raise UserError(f"{text_b}: has no {a.sweep.metric} values to compare (use --metric)")
    out_dir = out_dir or a.sweep.dir / "compare" / f"{_slug(text_a)}-vs-{_slug(text_b)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    table = comparison_table(a, b, seed)
    warning = task_warning(a, b)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    blocks = blocks_for(a, b, table, seed, warning)
    images = _plots(a, b, out_dir / "plots")
    if images:
        blocks += [Heading(2, "Plots")] + [Image(p, alt) for alt, p in images.values()]
    trials = pd.concat([rp.export_trials(s.sweep).assign(side=name) for name, s in (("A", a), ("B", b))], ignore_index=True)
    exports = rp.write_table(table, out_dir, "comparison") + rp.write_table(trials, out_dir, "trials")
    docs = rp.write_documents(blocks, out_dir, f"Comparison: {text_a} vs {text_b}", formats)
    markdown = to_markdown(blocks, out_dir)
    aim_runs, aim_lines = [], []
    if aim:
        head = {"a": text_a, "b": text_b, "metric": a.sweep.metric,
                **{k: rp.json_safe(table.iloc[0][k]) for k in ("diff", "diff_ci_low", "diff_ci_high", "welch_p", "p_improve")}}
        for s in {str(s.sweep.dir): s for s in (a, b)}.values():  # each sweep's experiment once
            run_hash, line = rp.attach_to_aim(s.sweep.record, f"compare/{text_a} vs {text_b}", markdown,
                                              {k: p for k, (_, p) in images.items()}, head,
                                              out_dir / f"aim_run_{s.sweep.name}.json")
            aim_runs.append(run_hash)
            aim_lines.append(line)
    return {"dir": out_dir, "docs": docs, "exports": exports, "images": images, "table": table,
            "markdown": markdown, "aim_runs": aim_runs, "aim_lines": aim_lines, "a": a, "b": b}


def _plots(a: Side, b: Side, plot_dir: Path) -> dict[str, tuple[str, Path]]:
    m = a.sweep.metric
    names = {"A": a, "B": b}
    values = {k: s.final[m].to_numpy(float) for k, s in names.items()}
    summary = pd.DataFrame({k: stats.describe(v) for k, v in values.items()}).T
    images = {"per_seed": (f"{m} per seed, A vs B", plots.per_seed(list(names), values, {}, summary, m,
                                                                    plot_dir / "per_seed.png", f"{m} per seed: A vs B"))}
    frames = []
    for k, s in names.items():
        steps = rd.load_steps(s.sweep)
        if not steps.empty:
            keep = steps[(steps["group"] == s.group) & steps["trial_id"].isin(s.final["trial_id"])]
            frames.append(keep.assign(group=k))
    if frames:
        curve = plots.curves(pd.concat(frames, ignore_index=True), list(names), m, plot_dir / "curves.png",
                             "learning curves, mean ± 1 std over seeds", labels={"A": f"A {a.group}", "B": f"B {b.group}"})
        if curve:
            images["curves"] = ("learning curves, A vs B", curve)
    return images


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", Path(text).name if "/" in text and ":" not in text else text)[:60]
