"""Sweeps on disk: the layout of a sweep directory, `ls` (status and best value), finding one to
`resume`, and refusing experiment state that is not ours.

A sweep directory `STORAGE/NAME/` holds our files (sweep.json, results.csv/.parquet, aim_runs.json,
trial_times.json) and Ray Tune's experiment directory `tune/` (trial folders, checkpoints, searcher
state). Ray copies every .json/.pkl of its experiment directory to a staging area on restore and
back on every save, so our files live beside it, never inside it. Each replicate phase
(`replicate_1`, `replicate_2`, ...) is a directory of the same layout inside it, plus `phase.json`.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pickletools
import re
import stat
import time
from collections import Counter
from pathlib import Path
from typing import Any

from trm_core.errors import UserError

from sweeper.errors import did_you_mean
from sweeper.run.trial import ENDED
from sweeper.spec import DEFAULT_STORAGE, SweepSpec, validate

FORMAT = "sweeper.sweep/1"
TUNE_SUBDIR = "tune"
SEARCH = "search"
"""The phase of a sweep's own trials (replicate phases are replicate_1, replicate_2, ...)."""


def tune_dir(d: Path) -> Path:
    """Ray's experiment directory of sweep `d` (sweeps made before the split kept it at `d` itself)."""
    if (d / TUNE_SUBDIR).exists():
        return d / TUNE_SUBDIR
    legacy = (d / "tuner.pkl").exists() or any(d.glob("trial_*"))
    return d if legacy else d / TUNE_SUBDIR


def alive(pid: Any) -> bool:
    """A driver whose pid is alive on this host (its sweep or phase is still running)."""
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def read_json_dict(path: Path) -> dict[str, Any] | None:
    """A JSON file holding a mapping; None when it is absent, cut short or holds something else."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_record(d: Path) -> dict[str, Any] | None:
    record = read_json_dict(d / "sweep.json")
    if record is not None and record.get("status") == "running" and not alive(record.get("pid")):
        record["status"] = "interrupted"  # its driver is gone: resume it
    return record


def phase_dirs(d: Path) -> list[tuple[str, Path]]:
    """(SEARCH, d) then each replicate phase in order."""
    reps = sorted((p for p in d.glob("replicate_*") if p.is_dir() and p.name.split("_")[-1].isdigit()),
                  key=lambda p: int(p.name.split("_")[-1]))
    return [(SEARCH, d)] + [(p.name, p) for p in reps]


def read_phase(d: Path) -> dict[str, Any] | None:
    """A replicate phase's phase.json; 'running' whose driver is gone reads as 'interrupted'."""
    rec = read_json_dict(d / "phase.json")
    if rec is not None and rec.get("status") == "running" and not alive(rec.get("pid")):
        rec["status"] = "interrupted"
    return rec


def list_sweeps(storage: Path) -> list[tuple[Path, dict[str, Any]]]:
    if not storage.is_dir():
        return []
    found = [(d, read_record(d)) for d in sorted(storage.iterdir()) if d.is_dir()]
    found = [(d, r) for d, r in found if r is not None]
    return sorted(found, key=lambda dr: dr[1].get("created_at") or 0)


def _statuses(d: Path) -> list[str] | None:
    """The `status` column of the sweep's results.csv ([] without a table; None when unreadable). The
    csv module, not pandas: `ls`, `resume` and the checks before Ray need not load pandas."""
    table = d / "results.csv"
    if not table.exists():
        return []
    try:
        with open(table, newline="") as f:
            reader = csv.DictReader(f)
            return [row["status"] for row in reader] if "status" in (reader.fieldnames or []) else None
    except (OSError, ValueError, csv.Error):
        return None


def _count_done(d: Path) -> str:
    statuses = _statuses(d)
    return "?" if statuses is None else str(sum(s in ENDED for s in statuses))


def objectives_text(record: dict[str, Any]) -> str:
    """`eval/exact_acc (max)`; a sweep with several objectives lists them all (its BEST is the first's)."""
    metrics, modes = record.get("metrics") or [record.get("metric", "?")], record.get("modes") or [record.get("mode", "?")]
    if len(metrics) != len(modes):
        modes = [record.get("mode", "?")] + ["?"] * (len(metrics) - 1)
    return ", ".join(f"{m} ({mode})" for m, mode in zip(metrics, modes))


def format_ls(storage: Path) -> str:
    rows = [("NAME", "STATUS", "TRIALS", "BEST", "METRIC", "CREATED", "PATH", "NOTE")]
    for d, r in list_sweeps(storage):
        best = r.get("best") or {}
        value = f"{best['mean']:.4f}" if best.get("mean") is not None else "-"
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.get("created_at") or 0))
        note = r.get("reason") or ""
        note = note if len(note) <= 80 else note[:77] + "..."
        rows.append((r.get("name", d.name), r.get("status", "?"), f"{_count_done(d)}/{r.get('total_trials', '?')}",
                     value, objectives_text(r), created, str(d), note))
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
    raise UserError(f"no sweep '{name_or_path}': neither a sweep directory nor a sweep under {root}"
                    f"{did_you_mean(name_or_path, names)}; see `python -m sweeper ls`")


def latest_unfinished(storage: str | None = None) -> Path:
    """`sweeper resume` without a name: the most recently created sweep that is interrupted."""
    root = Path(storage or DEFAULT_STORAGE)
    unfinished = [d for d, r in list_sweeps(root) if r.get("status") == "interrupted"]
    if not unfinished:
        raise UserError(f"no interrupted sweep under {root} to resume; see `python -m sweeper ls`")
    return unfinished[-1].resolve()


def check_ours(d: Path, record: dict[str, Any]) -> None:
    """Refuse experiment state we did not write: Tune's state is pickle, which runs code when loaded.

    The sweep must have our sweep.json, and Tune's pickles must belong to this user and not be
    world-writable (a file another user could have replaced is not loaded; group-writable is allowed,
    as umask 002 is common).
    """
    if record.get("format", FORMAT) != FORMAT or not {"spec", "spec_file", "name"} <= set(record):
        raise UserError(f"{d}/sweep.json was not written by `python -m sweeper` (format {record.get('format')!r})")
    tune = tune_dir(d)
    uid = os.getuid() if hasattr(os, "getuid") else None
    for p in [d, tune, *tune.glob("*.pkl")]:
        if not p.exists():
            continue
        st = p.stat()
        if uid is not None and st.st_uid != uid:
            raise UserError(f"{p} belongs to user id {st.st_uid}, not to you: Tune's experiment state is pickle"
                            f" (it runs code when loaded); resume only sweeps you made")
        if st.st_mode & stat.S_IWOTH:
            raise UserError(f"{p} is writable by every user: Tune's experiment state is pickle (it runs code when"
                            f" loaded); `chmod o-w` it if you trust its content, then resume")


def check_resumable(d: Path, record: dict[str, Any]) -> None:
    """`resume` needs Tune's saved state; a sweep that stopped before its first trial has none."""
    if not (tune_dir(d) / "tuner.pkl").exists():
        raise UserError(f"sweep {record.get('name')} has no Ray Tune state to resume ({tune_dir(d)}/tuner.pkl):"
                        f" it stopped before its first trial ({record.get('reason') or record.get('status')});"
                        f" nothing to resume: start it again with `python -m sweeper run {record.get('spec_file')}"
                        f" --name {d.name}` (a sweep that never started a trial does not keep its name)")
    check_restorable(d, f"sweep {record.get('name')}")


def missing_modules(d: Path) -> list[str]:
    """The sweeper modules that Tune's saved state in `d` (tuner.pkl, searcher state) names and this
    version does not have: state saved by an earlier layout of the package, which cannot be restored.
    The pickles are read with pickletools: nothing in them runs."""
    named: set[str] = set()
    for f in sorted(tune_dir(d).glob("*.pkl")):
        try:
            for _, arg, _ in pickletools.genops(f.read_bytes()):
                if isinstance(arg, str):
                    named.update(re.findall(r"\bsweeper(?:\.\w+)+", arg))
        except ValueError:  # not a pickle (replicate's searcher saves JSON there), or a torn one: no names
            continue
    return sorted(m for m in named if _module_missing(m))


def _module_missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except ImportError:  # a parent that is not a package (e.g. an attribute path)
        return True


def check_restorable(d: Path, what: str) -> None:
    """Refuse, in one line, to resume Tune state saved by an earlier layout of the sweeper, or state
    that a full disk cut short."""
    missing = missing_modules(d)
    if missing:
        raise UserError(f"{what} was saved by an earlier version of the sweeper: its Ray Tune state names"
                        f" {', '.join(missing)}, which this version does not have; resume it with the version that"
                        f" started it (git log -- sweeper), or run it again")
    cut = cut_short_states(d)
    if cut:
        raise UserError(f"{what}'s Ray Tune state {cut[0]} is cut short (its disk was full while Tune copied it:"
                        f" Tune writes it in place); resuming would lose the trials it no longer lists. The trials"
                        f" finished so far are in results.csv; run the sweep again")


def cut_short_states(d: Path) -> list[str]:
    """Tune's experiment-state files under d/tune that are not whole JSON (Tune copies its state into the
    sweep's storage in place, so a full disk leaves one cut short: the chaos soak found it)."""
    cut = []
    for f in sorted(tune_dir(d).glob("experiment_state-*.json")):
        try:
            json.loads(f.read_text())
        except (OSError, ValueError):
            cut.append(f.name)
    return cut


def never_started(d: Path) -> bool:
    """A sweep directory that holds nothing of value: its sweep stopped (failed, interrupted, its driver
    gone) before Tune saved any state or a trial wrote a result; `run` may take its name again."""
    record = read_record(d)
    if record is None or record.get("status") not in ("failed", "interrupted"):
        return False
    return not (tune_dir(d) / "tuner.pkl").exists() and not (d / "results.csv").exists() and not any(d.glob("replicate_*"))


def finished_text(d: Path, record: dict[str, Any]) -> str:
    """What `resume` says of a finished sweep (it runs nothing): trials, best, what to do next."""
    statuses = _statuses(d)
    counts = " (" + ", ".join(f"{n} {s}" for s, n in Counter(statuses).most_common()) + ")" if statuses else ""
    best = record.get("best") or {}
    best_text = (f"; best {best['config_id']}: {record.get('metric')} {best['mean']:.4f} over {best['seeds']} seed(s)"
                 if best.get("mean") is not None else "")
    name = record.get("name", d.name)
    return (f"sweep {name} already finished with {_count_done(d)} trials{counts}{best_text}: nothing to resume."
            f" More seeds: python -m sweeper replicate {name} --top 3 --seeds 0-3; report: python -m sweeper report {name}")


def spec_for_resume(d: Path) -> tuple[SweepSpec, dict[str, Any]]:
    """Rebuild the exact spec a sweep ran with (its --set already applied) from its sweep.json."""
    record = read_record(d)
    if record is None:
        raise UserError(f"{d}/sweep.json is missing or unreadable")
    if record.get("status") == "running":
        raise UserError(f"sweep {record.get('name')} is still running (pid {record.get('pid')}); resume it after it stops")
    check_ours(d, record)
    spec = validate(record["spec_file"], record["spec"])
    spec.name, spec.storage = d.name, d.parent
    spec.aim_repo = Path(record["aim_repo"])
    return spec, record
