"""The Pareto front of a sweep with several objectives (`metric: [eval/exact_acc, cost/train_s]`,
`mode: [max, min]`): per configuration, the mean and 95% bootstrap interval of each objective over
its final seeds (every phase pooled, as the rest of the report), which configurations no other
beats, and for each one that is beaten, a configuration that beats it.

Dominance is on the means over seeds: configuration A dominates B when A's mean is at least as good
as B's in every objective (under its mode) and strictly better in one. The front is the set of
configurations no other dominates; every dominated configuration is named with one front
configuration that dominates it (one always exists: dominance is transitive and the set is finite).
A configuration without a finite mean for some objective cannot be placed and is listed apart.

`pareto_table(sweep, final, seed)` gives the table (exported as pareto.csv / pareto.parquet, schema in
docs/REPORTS.md), `pareto_blocks(sweep, final, seed, plot_dir)` the report's section and its plot
of the first two objectives. Both are empty for a sweep with one objective.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sweeper.report import data as rd
from sweeper.report import stats
from sweeper.report.plots import _save as save_png
from sweeper.report.render import Heading, Para, Table, ci, fmt

FRONT, DOMINATED, INCOMPLETE = "front", "dominated", "incomplete"
SINGLE = "†"
"""Marks a configuration measured on one seed (as the main table does)."""
STATS = ("n", "mean", "std", "ci_low", "ci_high", "min", "max")
"""Per objective, the pareto table's columns `<objective>:<stat>`."""


def objectives(sweep: rd.Sweep) -> tuple[list[str], list[str]]:
    return list(sweep.objectives), list(sweep.modes)


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """a is at least as good as b in every objective and strictly better in one (max: higher is better).
    Means equal up to rounding (the same seeds' values summed in another order) count as equal."""
    same = [bool(np.isclose(x, y, rtol=1e-12, atol=0.0)) for x, y in zip(a, b)]
    better = [not s and (x > y if m == "max" else x < y) for x, y, m, s in zip(a, b, modes, same)]
    worse = [not s and (x < y if m == "max" else x > y) for x, y, m, s in zip(a, b, modes, same)]
    return any(better) and not any(worse)


def _best_first(table: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Rows by the first objective's mean, best first (NaN last), ties by group."""
    return table.sort_values([f"{metric}:mean", "group"], ascending=[mode == "min", True], na_position="last",
                             kind="stable")


def pareto_table(sweep: rd.Sweep, final: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per configuration with a final trial: `group`, `pareto` (front | dominated | incomplete),
    `dominated_by` (a front configuration that dominates it; empty otherwise), `n_dominating` (how many
    configurations dominate it), `seeds`, then for every objective `<key>:n`, `:mean`, `:std`, `:ci_low`,
    `:ci_high`, `:min`, `:max`, then `param:<key>` of every parameter. Ordered front first (by the
    first objective, best first), then dominated, then incomplete. Empty with one objective."""
    metrics, modes = objectives(sweep)
    if len(metrics) < 2:
        return pd.DataFrame()
    rows = []
    for g, part in final.groupby("group", sort=False):
        row: dict[str, Any] = {"group": g, "seeds": ",".join(str(int(s)) for s in sorted(part["seed"]))}
        for m in metrics:
            values = pd.to_numeric(part[m], errors="coerce") if m in part else pd.Series(dtype=float)
            row.update({f"{m}:{k}": v for k, v in stats.describe(values.dropna(), seed).items()})
        rows.append(row)
    columns = ["group", "pareto", "dominated_by", "n_dominating", "seeds"] + [f"{m}:{k}" for m in metrics for k in STATS]
    table = pd.DataFrame(rows, columns=[c for c in columns if c not in ("pareto", "dominated_by", "n_dominating")])
    if table.empty:
        return pd.DataFrame(columns=columns)
    means = table[[f"{m}:mean" for m in metrics]].to_numpy(float)
    complete = np.isfinite(means).all(axis=1)
    beaten_by = [[j for j in range(len(table)) if complete[i] and complete[j] and dominates(means[j], means[i], modes)]
                 for i in range(len(table))]
    table["pareto"] = [INCOMPLETE if not complete[i] else DOMINATED if beaten_by[i] else FRONT for i in range(len(table))]
    table["n_dominating"] = [len(b) for b in beaten_by]
    # name the front configuration that dominates it and comes first in the table's order
    order = {g: k for k, g in enumerate(_best_first(table, metrics[0], modes[0])["group"])}
    groups = list(table["group"])
    table["dominated_by"] = [min((groups[j] for j in b if not beaten_by[j]), key=order.get, default="") for b in beaten_by]
    rank = {FRONT: 0, DOMINATED: 1, INCOMPLETE: 2}
    table = (_best_first(table, metrics[0], modes[0]).assign(_kind=lambda t: t["pareto"].map(rank))
             .sort_values("_kind", kind="stable").drop(columns="_kind").reset_index(drop=True))
    params = rd.group_params(sweep)
    keys = sorted({k for g in table["group"] for k in params.get(g, {})})
    for k in keys:
        table[rd.PARAM + k] = [params.get(g, {}).get(k) for g in table["group"]]
    return table[columns + [rd.PARAM + k for k in keys]]


def pareto_blocks(sweep: rd.Sweep, final: pd.DataFrame, seed: int, plot_dir: Path,
                  table: pd.DataFrame | None = None) -> tuple[list, dict[str, tuple[str, Path]]]:
    """The report's Pareto section (Heading, Para, Table blocks) and its plot {"pareto": (caption, PNG)};
    ([], {}) for a sweep with one objective. `table`: pareto_table's result, when the caller has it."""
    metrics, modes = objectives(sweep)
    if len(metrics) < 2:
        return [], {}
    table = pareto_table(sweep, final, seed) if table is None else table
    named = ", ".join(f"`{m}` ({mode})" for m, mode in zip(metrics, modes))
    blocks: list = [Heading(2, f"Pareto front over {len(metrics)} objectives")]
    if table.empty:
        return blocks + [Para(f"Objectives {named}. No configuration has a trial trained to the end yet: no front.")], {}
    front = table[table["pareto"] == FRONT]
    blocks.append(Para(
        f"Objectives {named}. Per configuration: the mean over its final seeds (every phase pooled) and its 95%"
        " bootstrap interval. A configuration is dominated when another has a mean at least as good in every"
        " objective and strictly better in one; the front is every configuration no other dominates"
        f" ({len(front)} of {len(table)}), listed first, best first by `{metrics[0]}`. The front is drawn on means:"
        " where intervals overlap, the seeds do not separate the configurations."))
    params = rd.group_params(sweep)
    groups = list(table["group"])
    vary, const = rd.varying(params, groups)
    if const:
        blocks.append(Para("Same in every configuration shown: " + ", ".join(f"`{k}` = {fmt(v)}" for k, v in const.items())))
    number = {g: i for i, g in enumerate(groups, 1)}
    header = ["#", "config", *vary, "n", *[h for m, mode in zip(metrics, modes) for h in (f"{m} ({mode})", "95% CI")],
              "Pareto", "seeds"]
    rows = []
    for _, r in table.iterrows():
        p = params.get(r["group"], {})
        n = int(r[f"{metrics[0]}:n"])
        verdict = {FRONT: "front", INCOMPLETE: "no value for every objective"}.get(
            r["pareto"], f"dominated by #{number.get(r['dominated_by'], '?')} {r['dominated_by']}")
        cells = [c for m in metrics for c in (fmt(r[f"{m}:mean"]), ci(r[f"{m}:ci_low"], r[f"{m}:ci_high"]))]
        rows.append([str(number[r["group"]]), r["group"], *[fmt(p[k]) if k in p else "–" for k in vary],
                     f"{n} {SINGLE}" if n == 1 else str(n), *cells, verdict, r["seeds"]])
    blocks.append(Table(header, rows))
    if (table[f"{metrics[0]}:n"] == 1).any():
        blocks.append(Para(f"{SINGLE} one seed: its mean is one run and has no interval; `python -m sweeper replicate"
                           f" {sweep.name} --top K --seeds 0-3` adds seeds."))
    if (table["pareto"] == INCOMPLETE).any():
        blocks.append(Para("No value for every objective: some objective has no finite value in any of its final"
                           " seeds, so the configuration is neither on the front nor dominated."))
    if len(metrics) > 2:
        blocks.append(Para(f"The table's front is over all {len(metrics)} objectives; the plot shows the first two"
                           f" (`{metrics[0]}`, `{metrics[1]}`), where a front configuration may look dominated."))
    path = pareto_plot(table, final, metrics[:2], modes[:2], number, plot_dir / "pareto.png",
                       f"{sweep.name}: Pareto front, {metrics[1]} vs {metrics[0]}")
    images = {"pareto": (f"Pareto front: {metrics[1]} against {metrics[0]}, mean and 95% CI per configuration", path)} if path else {}
    return blocks, images


def pareto_plot(table: pd.DataFrame, final: pd.DataFrame, metrics: Sequence[str], modes: Sequence[str],
                number: dict[str, int], path: Path, title: str) -> Path | None:
    """The first two objectives (x, y): every final seed faint, each configuration's mean with its 95%
    interval on both axes; front configurations highlighted, labelled by their table number and joined by
    the step line that bounds what they dominate; dominated ones grey."""
    x, y = metrics
    ok = table[np.isfinite(table[f"{x}:mean"].astype(float)) & np.isfinite(table[f"{y}:mean"].astype(float))]
    if ok.empty:
        return None
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for kind, color, z in ((DOMINATED, "0.6", 2), (FRONT, "C3", 4)):
        part = ok[ok["pareto"] == kind]
        if part.empty:
            continue
        seeds = final[final["group"].isin(part["group"])]
        if x in seeds and y in seeds:
            ax.scatter(pd.to_numeric(seeds[x], errors="coerce"), pd.to_numeric(seeds[y], errors="coerce"), s=12,
                       color=color, alpha=0.3, lw=0, zorder=z - 1, label=f"one seed ({kind})")
        mx, my = part[f"{x}:mean"].to_numpy(float), part[f"{y}:mean"].to_numpy(float)
        xerr = _err(mx, part[f"{x}:ci_low"], part[f"{x}:ci_high"])
        yerr = _err(my, part[f"{y}:ci_low"], part[f"{y}:ci_high"])
        ax.errorbar(mx, my, xerr=xerr, yerr=yerr, fmt="o", ms=7 if kind == FRONT else 5, color=color, ecolor=color,
                    elinewidth=1, capsize=2, zorder=z, label=f"{kind}: mean, 95% CI" if kind == FRONT
                    else "dominated: mean, 95% CI")
        labels: dict[tuple[float, float], list[str]] = {}  # configurations with the same means share a label
        for g, gx, gy in zip(part["group"], mx, my):
            labels.setdefault((gx, gy), []).append(f"#{number.get(g, '?')}")
        for (gx, gy), names in labels.items():
            ax.annotate(",".join(names), (gx, gy), xytext=(4, 3), textcoords="offset points", fontsize=7,
                        color="0.1" if kind == FRONT else "0.45")
    front = ok[ok["pareto"] == FRONT].sort_values(f"{x}:mean", kind="stable")
    if len(front) > 1:
        # between two front points, what the front attains comes from the point whose x is better
        ax.step(front[f"{x}:mean"], front[f"{y}:mean"], where="pre" if modes[0] == "max" else "post", color="C3",
                lw=1.2, alpha=0.8, zorder=3, label="front")
    ax.set_xlabel(f"{x} ({'higher' if modes[0] == 'max' else 'lower'} is better)")
    ax.set_ylabel(f"{y} ({'higher' if modes[1] == 'max' else 'lower'} is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return save_png(fig, path)


def _err(mean: np.ndarray, low: pd.Series, high: pd.Series) -> np.ndarray:
    """Asymmetric error bars from an interval (0 where there is none: one seed)."""
    lo = np.nan_to_num(mean - low.to_numpy(float), nan=0.0)
    hi = np.nan_to_num(high.to_numpy(float) - mean, nan=0.0)
    return np.vstack([np.clip(lo, 0, None), np.clip(hi, 0, None)])
