"""A report (or an ensemble) on the sweep's Aim experiment: one more run, tagged `report`, `sweep:SWEEP`
and `phase:report` (an ensemble: `ensemble`, `phase:ensemble`), holding the headline numbers, the
tables and the plots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aim

from trm_core.errors import write_text_atomic

from sweeper.aim.repo import ensure_repo, reindex_or_warn
from sweeper.aim.runs import close_run, tags


def attach_report(repo: str | os.PathLike, experiment: str, name: str, markdown: str,
                  images: dict[str, str | os.PathLike], summary: dict[str, Any], state_file: str | os.PathLike,
                  sweep: str | None = None, tag: str = "report") -> str:
    """Attach a report to a sweep's Aim experiment: one run named `{name}` (tags `{tag}`, `sweep:SWEEP`,
    `phase:{tag}`) holding `{tag}` (the headline numbers, as params: queryable), the markdown tables as
    aim.Text `{tag}` and each plot as aim.Image `plot/{key}`. Making it again adds a step to the same
    run (its hash is kept in `state_file`). Returns the run's hash."""
    ensure_repo(repo)
    state = Path(state_file)
    old = json.loads(state.read_text()).get("hash") if state.exists() else None
    kwargs = dict(repo=str(repo), system_tracking_interval=None, capture_terminal_logs=False)
    run = aim.Run(run_hash=old, **kwargs) if old else aim.Run(experiment=experiment, **kwargs)
    step = int(run.get(f"{tag}_count") or 0)
    run.name = name
    for t in [tag, *tags(sweep or name.split("/")[0], tag)]:
        if t not in run.tags:
            run.add_tag(t)
    run[f"{tag}_count"] = step + 1
    run[tag] = summary
    run.track(aim.Text(markdown), name=tag, step=step)
    for key, path in images.items():
        run.track(aim.Image(str(path), caption=key), name=f"plot/{key}", step=step)
    close_run(run)
    write_text_atomic(state, json.dumps({"hash": run.hash}))
    reindex_or_warn(repo, [run.hash])
    return run.hash
