"""PNG plots of an engine result (its JSON form), with matplotlib's Agg backend.

`figures(data)` builds the figures (accuracy vs depth, vs breadth, vs NFE; with the checkpoint prefixes
of a sweep's ensemble, vs members and vs NFE as members grow; halting; residuals)
from `Result.to_json()`, so the sweeper's Aim adapter can draw the same ones from reported data;
`write_plots(data, out_dir)` saves them as PNG files. The oracle is drawn dashed, labelled ceiling.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trm_core.errors import UserError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by_rule(rows: list[dict], **fixed) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        if all(r[k] == v for k, v in fixed.items()):
            out.setdefault(r["rule"], []).append(r)
    return out


def _style(rule: str, rows: list[dict]) -> dict:
    ceiling = rows[0]["ceiling"]
    return {"label": rule + (" (ceiling)" if ceiling else ""), "linestyle": "--" if ceiling else "-", "marker": "o"}


def _accuracy_vs(plt, data: dict, x: str, fixed: dict, title: str, log: bool):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for rule, rows in _by_rule(data["results"], **fixed).items():
        rows = sorted(rows, key=lambda r: r[x])
        ax.plot([r[x] for r in rows], [r["exact_acc"] for r in rows], **_style(rule, rows))
    if x == "depth" and not data["settings"]["act"]:
        curve = data["diagnostics"]["steps"]["first_member_exact_acc"][0]
        ax.plot(range(1, len(curve) + 1), curve, color="0.6", linewidth=1, label="member 0, every step")
    if log:
        ax.set_xscale("log", base=2)
    ax.set_xlabel({"depth": "depth D (supervision steps)", "breadth": "breadth B (restarts)",
                   "avg_nfe": "avg NFE per puzzle"}[x])
    ax.set_ylabel("exact accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _ensemble_size(plt, data: dict, x: str):
    """Accuracy of every rule against the ensemble's size (the first m checkpoints, m = 1..C) at the
    largest depth and breadth, as members or as avg NFE."""
    s = data["settings"]
    big_d, big_b = max(s["depths"]), max(s["breadths"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for rule, rows in _by_rule(data["by_checkpoints"], depth=big_d, breadth=big_b).items():
        rows = sorted(rows, key=lambda r: r["checkpoints"])
        ax.plot([r[x] for r in rows], [r["exact_acc"] for r in rows], **_style(rule, rows))
    ax.set_xscale("log", base=2)
    ax.set_xlabel({"members": f"members (checkpoints x {len(data['transforms'])} transform(s) x {big_b} restart(s))",
                   "avg_nfe": "avg NFE per puzzle"}[x])
    ax.set_ylabel("exact accuracy")
    ax.set_title(f"accuracy vs ensemble size{' (as compute)' if x == 'avg_nfe' else ''}: the first m checkpoints, "
                 f"depth {big_d}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _halting(plt, data: dict):
    h = data["diagnostics"]["halting"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    steps = list(range(1, len(h["counts"]) + 1))
    ax.bar(steps, h["counts"], color="tab:blue", alpha=0.6, label="rows halting at this step")
    ax.set_xlabel(f"first step with q_halt > 0 ({h['never']} rows never halted)")
    ax.set_ylabel("rows")
    ax2 = ax.twinx()
    acc = [(s, a) for s, a in zip(steps, h["exact_acc_by_step"]) if a is not None]
    ax2.plot([s for s, _ in acc], [a for _, a in acc], "o-", color="tab:red", label="exact accuracy at the halt")
    ax2.set_ylabel("exact accuracy of the halted answer")
    ax2.set_ylim(0, 1.02)
    ax.set_title("halting: when rows halt and how often they are right")
    fig.legend(loc="upper right", bbox_to_anchor=(0.86, 0.86), fontsize=8)
    fig.tight_layout()
    return fig


def _residuals(plt, data: dict):
    d = data["diagnostics"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for res, ex in zip(d["traces"]["residual"], d["traces"]["exact"]):
        pts = [(i + 1, r, e) for i, (r, e) in enumerate(zip(res, ex)) if r is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=0.6, alpha=0.5,
                    color="tab:green" if pts[-1][2] == 1.0 else "tab:red")
    mean = [(i + 1, r) for i, r in enumerate(d["steps"]["residual"]) if r is not None]
    ax.plot([m[0] for m in mean], [m[1] for m in mean], color="black", linewidth=2, label="mean over running rows")
    ax.set_yscale("log")
    ax.set_xlabel("supervision step")
    ax.set_ylabel("||z_t - z_(t-1)|| (z_H, z_L)")
    ax.set_title("latent residuals (thin: single rows; green: right at their last step)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figures(data: dict[str, Any]) -> dict[str, Any]:
    """name -> matplotlib Figure."""
    plt = _pyplot()
    s = data["settings"]
    big_d, big_b = max(s["depths"]), max(s["breadths"])
    out = {}
    if len(s["depths"]) > 1 or not s["act"]:
        out["accuracy_vs_depth"] = _accuracy_vs(plt, data, "depth", {"breadth": big_b},
                                                f"accuracy vs depth (breadth {big_b})", log=True)
    if len(s["breadths"]) > 1:
        out["accuracy_vs_breadth"] = _accuracy_vs(plt, data, "breadth", {"depth": big_d},
                                                  f"accuracy vs breadth (depth {big_d})", log=True)
    out["accuracy_vs_nfe"] = _accuracy_vs(plt, data, "avg_nfe", {}, "accuracy vs compute (every depth and breadth)",
                                          log=True)
    if len({r["checkpoints"] for r in data.get("by_checkpoints", [])}) > 1:
        out["accuracy_vs_members"] = _ensemble_size(plt, data, "members")
        out["accuracy_vs_nfe_by_members"] = _ensemble_size(plt, data, "avg_nfe")
    out["halting"] = _halting(plt, data)
    out["residuals"] = _residuals(plt, data)
    return out


def write_plots(data: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures(data).items():
        path = out / f"{name}.png"
        tmp = out / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
        plt.close(fig)
        paths.append(path)
    return paths
