"""Past sweeps on disk: `ls` (status and best value) and finding one to `resume`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from trm_core.errors import UserError

from sweeper.spec import DEFAULT_STORAGE, SweepSpec, validate


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def read_record(d: Path) -> dict[str, Any] | None:
    f = d / "sweep.json"
    try:
        record = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    if record.get("status") == "running" and not _alive(record.get("pid")):
        record["status"] = "interrupted"  # its driver is gone: resume it
    return record


def list_sweeps(storage: Path) -> list[tuple[Path, dict[str, Any]]]:
    if not storage.is_dir():
        return []
    found = [(d, read_record(d)) for d in sorted(storage.iterdir()) if d.is_dir()]
    found = [(d, r) for d, r in found if r is not None]
    return sorted(found, key=lambda dr: dr[1].get("created_at") or 0)


def _count_done(d: Path) -> str:
    import pandas as pd

    table = d / "results.csv"
    if not table.exists():
        return "0"
    df = pd.read_csv(table, usecols=["status"])
    return str(int(df["status"].isin(["done", "stopped_early", "error"]).sum()))


def format_ls(storage: Path) -> str:
    rows = [("NAME", "STATUS", "TRIALS", "BEST", "METRIC", "CREATED", "PATH")]
    for d, r in list_sweeps(storage):
        best = r.get("best") or {}
        value = f"{best['mean']:.4f}" if best.get("mean") is not None else "-"
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.get("created_at") or 0))
        rows.append((r.get("name", d.name), r.get("status", "?"), f"{_count_done(d)}/{r.get('total_trials', '?')}",
                     value, f"{r.get('metric', '?')} ({r.get('mode', '?')})", created, str(d)))
    if len(rows) == 1:
        return f"no sweeps under {storage}"
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def find_sweep(name_or_path: str, storage: str | None = None) -> Path:
    """A sweep directory by path, or by name under the storage root."""
    p = Path(name_or_path)
    candidates = [p, Path(storage or DEFAULT_STORAGE) / name_or_path]
    for c in candidates:
        if (c / "sweep.json").is_file():
            return c.resolve()
    root = Path(storage or DEFAULT_STORAGE)
    names = [d.name for d, _ in list_sweeps(root)]
    from sweeper.errors import did_you_mean

    raise UserError(f"no sweep '{name_or_path}': neither a sweep directory nor a sweep under {root}"
                    f"{did_you_mean(name_or_path, names)}; see `python -m sweeper ls`")


def spec_for_resume(d: Path) -> tuple[SweepSpec, dict[str, Any]]:
    """Rebuild the exact spec a sweep ran with (its --set already applied) from its sweep.json."""
    record = read_record(d)
    if record is None:
        raise UserError(f"{d}/sweep.json is missing or unreadable")
    if record.get("status") == "running":
        raise UserError(f"sweep {record.get('name')} is still running (pid {record.get('pid')}); resume it after it stops")
    spec = validate(record["spec_file"], record["spec"])
    spec.name, spec.storage = d.name, d.parent
    spec.aim_repo = Path(record["aim_repo"])
    return spec, record
