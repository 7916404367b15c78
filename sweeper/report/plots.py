"""The report's plots as PNG files: matplotlib's object API (Figure + the Agg canvas), no pyplot, so
nothing depends on a display or on global state.

- per_seed: the metric of every final seed by configuration, with the mean and its bootstrap interval;
  seeds stopped early are drawn apart (hollow, grey): their values are not final.
- curves: learning curves (metric against training step), mean over seeds with a band of +/- one
  sample standard deviation where two or more seeds have reached that step.
- cost: mean metric against mean device-seconds per trial (error bars: one standard deviation).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    """Write the PNG to a temp file, then rename it over the old one."""
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _jitter(n: int) -> np.ndarray:
    """Fixed horizontal offsets, so the same data always draws the same picture."""
    return np.linspace(-0.15, 0.15, n) if n > 1 else np.zeros(n)


def per_seed(groups: Sequence[str], final: dict[str, np.ndarray], stopped: dict[str, np.ndarray],
             summary: pd.DataFrame, metric: str, path: Path, title: str) -> Path:
    """`summary` has one row per group with mean, ci_low, ci_high (indexed by group)."""
    fig = Figure(figsize=(max(5.0, 0.75 * len(groups) + 2.0), 3.8))
    ax = fig.add_subplot()
    labelled: set[str] = set()

    def once(label: str) -> str | None:  # one legend entry per kind of mark
        return None if label in labelled or labelled.add(label) else label

    for i, g in enumerate(groups):
        y = final.get(g, np.array([]))
        ax.scatter(i + _jitter(len(y)), y, s=22, color="C0", zorder=3, label=once("final seed"))
        s = stopped.get(g, np.array([]))
        if len(s):
            ax.scatter(i + 0.3 + _jitter(len(s)) / 3, s, s=22, facecolors="none", edgecolors="0.55", zorder=2,
                       label=once("stopped early (not final)"))
        if g in summary.index and np.isfinite(summary.loc[g, "mean"]):
            row = summary.loc[g]
            ax.hlines(row["mean"], i - 0.25, i + 0.25, color="C3", lw=2, zorder=4, label=once("mean"))
            if np.isfinite(row["ci_low"]):
                ax.vlines(i, row["ci_low"], row["ci_high"], color="C3", lw=1, zorder=4, label=once("95% bootstrap CI"))
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def curves(steps: pd.DataFrame, groups: Sequence[str], metric: str, path: Path, title: str,
           labels: dict[str, str] | None = None) -> Path | None:
    """`steps` holds step-level rows (group, seed, step, metric) of final trials only."""
    if steps.empty or metric not in steps:
        return None
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    drawn = 0
    for i, g in enumerate(groups):
        part = steps[(steps["group"] == g) & steps[metric].notna()]
        if part.empty:
            continue
        table = part.pivot_table(index="step", columns="seed", values=metric, aggfunc="last")
        mean, count = table.mean(axis=1), table.count(axis=1)
        std = table.std(axis=1, ddof=1).where(count >= 2)
        n = int(table.shape[1])
        ax.plot(mean.index, mean.values, color=f"C{i}", lw=1.6, label=f"{(labels or {}).get(g, g)} ({n} seed{'s' * (n > 1)})")
        ax.fill_between(mean.index, (mean - std).values, (mean + std).values, color=f"C{i}", alpha=0.2, lw=0)
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def cost(table: pd.DataFrame, metric: str, x: str, xlabel: str, path: Path, title: str) -> Path | None:
    """`table`: one row per group (ranked) with columns mean, std and `x`; points are labelled by rank."""
    ok = table[np.isfinite(table[x].astype(float)) & np.isfinite(table["mean"].astype(float))]
    if ok.empty:
        return None
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.add_subplot()
    ax.errorbar(ok[x], ok["mean"], yerr=ok["std"].fillna(0.0), fmt="o", color="C0", ecolor="0.6", capsize=3)
    for rank, (_, row) in enumerate(ok.iterrows(), 1):
        ax.annotate(f"#{rank}", (row[x], row["mean"]), xytext=(4, 3), textcoords="offset points", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)
