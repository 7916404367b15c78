"""The report's tables of the other metrics: held-out evaluations (`eval/*`, `final/*`, `eval_tts/*`)
per configuration, and keys of three or more parts grouped by pattern (`eval_tts/<rule>/exact_acc`,
`train/win_rate/<k>`): one table per namespace, a row per middle part, a column per last part.

`final/*` is the last evaluation on the whole held-out split; when periodic evaluations used the
whole split too (train.eval_max_puzzles = 0), every `final/<leaf>` equals `eval/<leaf>` and the
report shows the pair once, saying so.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from sweeper.report import data as rd
from sweeper.report import stats
from sweeper.report.render import NA, Heading, Para, Table, ci, fmt, pm

FAMILY = re.compile(r"(?P<ns>[^/]+)/(?P<row>.+)/(?P<col>[^/]+)")  # ns/row/col: eval_tts/<rule>/exact_acc


def families(columns: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """Keys of three or more parts by namespace: {ns: [(key, row, col), ...]} in column order."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for key in columns:
        m = FAMILY.fullmatch(key)
        if m:
            out.setdefault(m["ns"], []).append((key, m["row"], m["col"]))
    return out


def eval_metrics(columns: list[str], main: str) -> list[str]:
    """Two-part keys of held-out evaluations (eval/..., eval_tts/..., final/... on the whole split),
    the main metric excluded."""
    return [c for c in columns if c != main and c.count("/") == 1
            and (c.startswith("eval") or c.startswith("final/"))]


def same_as_eval(final: pd.DataFrame, columns: list[str]) -> list[str]:
    """The `final/<leaf>` columns equal to their `eval/<leaf>` in every final trial (NaN equal to NaN)."""
    same = []
    for col in columns:
        twin = "eval/" + col[len("final/"):] if col.startswith("final/") else None
        if twin in final and col in final:
            a = pd.to_numeric(final[col], errors="coerce").to_numpy(float)
            b = pd.to_numeric(final[twin], errors="coerce").to_numpy(float)
            if np.allclose(a, b, rtol=0, atol=1e-12, equal_nan=True):
                same.append(col)
    return same


def _pm_of(values: pd.Series, seed: int) -> str:
    d = stats.describe(pd.to_numeric(values, errors="coerce").dropna(), seed)
    return pm(d["mean"], d["std"], d["n"]) if d["n"] else NA


def eval_blocks(sweep: rd.Sweep, final: pd.DataFrame, groups: list[str], cols: list[str], seed: int) -> list:
    """The other held-out metrics, mean ± std (n) per configuration; `final/*` only where it differs."""
    others = eval_metrics(cols, sweep.metric)
    twins = same_as_eval(final, others)
    shown = [m for m in others if m not in twins]
    if not shown or not groups:
        return []
    rows = [[g, *[_pm_of(final.loc[final["group"] == g, m], seed) for m in shown]] for g in groups]
    blocks = [Heading(2, "Final evaluation metrics (mean ± std (n))"), Table(["config", *shown], rows)]
    if twins:
        blocks.append(Para(f"{', '.join(f'`{t}`' for t in twins)}: equal to the `eval/*` column of the same name in"
                           " every trial (the periodic evaluations used the whole held-out split), so shown once."))
    return blocks


def family_blocks(final: pd.DataFrame, groups: list[str], cols: list[str], leaf: str, seed: int) -> list:
    """Per family NS/ROW/COLUMN: the full statistics of the column `leaf` (e.g. every rule's exact_acc)
    and mean ± std (n) of all columns."""
    blocks: list = []
    for ns, keys in families(cols).items():
        col_names = list(dict.fromkeys(col for _, _, col in keys))
        row_names = list(dict.fromkeys(row for _, row, _ in keys))
        lookup = {(row, col): key for key, row, col in keys}
        full, compact = [], []
        for g in groups:
            part = final[final["group"] == g]
            for r in row_names:
                cells = [_pm_of(part[lookup[(r, c)]], seed) if (r, c) in lookup else NA for c in col_names]
                if any(cell != NA for cell in cells):  # configurations without these keys get no row
                    compact.append([g, r, *cells])
                if (r, leaf) in lookup and part[lookup[(r, leaf)]].notna().any():
                    d = stats.describe(pd.to_numeric(part[lookup[(r, leaf)]], errors="coerce").dropna(), seed)
                    full.append([g, r, str(d["n"]), fmt(d["mean"]), fmt(d["std"]), ci(d["ci_low"], d["ci_high"]),
                                 fmt(d["min"]), fmt(d["max"])])
        blocks.append(Heading(2, f"`{ns}/<row>/<column>` metrics"))
        if full:
            blocks += [Para(f"`{ns}/<row>/{leaf}`, per configuration and row:"),
                       Table(["config", "row", "n", "mean", "std", "95% CI", "min", "max"], full)]
        blocks += [Para("All columns, mean ± std (n):"), Table(["config", "row", *col_names], compact)]
    return blocks


def metric_blocks(sweep: rd.Sweep, final: pd.DataFrame, groups: list[str], seed: int) -> list:
    """Other final eval metrics, then the families of per-rule keys."""
    cols = [c for c in sweep.metric_columns() if final[c].notna().any()] if not final.empty else []
    leaf = sweep.metric.rsplit("/", 1)[-1]
    return eval_blocks(sweep, final, groups, cols, seed) + family_blocks(final, groups, cols, leaf, seed)
