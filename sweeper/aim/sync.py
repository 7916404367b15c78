"""`python -m sweeper aim-sync NAME`: write to Aim what an outage left out, from Tune's own records of
every trial (`tune/trial_*/result.json`, params.json): the missing runs are created, the runs that
lack steps are extended, the runs of trials the sweep no longer has (a driver stopped before Tune
saved them) are archived as `orphaned`; running it again changes nothing. It is the one writer of results.csv
besides the results owner (it fills the `aim_run` column), and runs while the sweep does not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aim

from trm_core.errors import write_text_atomic

from sweeper.aim.repo import ensure_repo, reindex_or_warn
from sweeper.aim.runs import archive_orphan, close_run, metric_keys, new_run, open_run, track_result
from sweeper.run.sweeps import tune_dir
from sweeper.run.table import read_table, write_atomic
from sweeper.run.trial import SweepBase
from sweeper.spec import validate


def _results(trial_dir: Path) -> list[dict[str, Any]]:
    f = trial_dir / "result.json"
    if not f.exists():
        return []
    out = []
    for line in f.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn last line
    return out


def sync_sweep(d: Path, record: dict[str, Any]) -> str:
    """Create the missing Aim runs of sweep `d` and add the steps its runs lack; idempotent."""
    spec = validate(record["spec_file"], record["spec"])
    spec.name = d.name
    repo = str(Path(record["aim_repo"]))
    experiment = spec.aim_experiment
    base = SweepBase.from_spec(spec, embedded=False)
    ensure_repo(repo)
    state_file = d / "aim_runs.json"
    hashes = json.loads(state_file.read_text()) if state_file.exists() else {}
    table = read_table(d / "results.csv") if (d / "results.csv").exists() else None
    status = dict(zip(table["trial_id"], table["status"])) if table is not None else {}
    created = extended = orphaned = 0
    for trial_dir in sorted(tune_dir(d).glob("trial_*")):
        trial_id = trial_dir.name[len("trial_"):]
        if table is not None and trial_id not in status:
            # a trial the sweep no longer has (its driver stopped before Tune saved it; a resume ran that
            # sample as a new trial): its run is archived as `orphaned`, as the Aim callback does
            orphaned += archive_stored(repo, hashes.get(trial_id))
            continue
        rows = _results(trial_dir)
        if not rows:
            continue
        config = rows[-1].get("config") or json.loads((trial_dir / "params.json").read_text())
        # run_exists lists the runs' own storage, not the index: a run written before an outage or a
        # killed driver but never indexed is continued, not duplicated
        stored = bool(hashes.get(trial_id)) and aim.Repo.from_path(repo).run_exists(hashes[trial_id])
        if stored:
            run = open_run(repo, hashes[trial_id])
            last = run.get("last_step", -1)
        else:
            run, last = new_run(repo, experiment, spec.name, trial_id, base.resolve(config)), -1
            hashes[trial_id] = run.hash
            write_text_atomic(state_file, json.dumps(hashes, indent=1))
            created += 1
        newer = [r for r in rows if int(r.get("step", -1)) > (last if last is not None else -1)]
        for r in newer:
            track_result(run, r, metric_keys(r))
        extended += bool(newer and stored)
        run["status"] = status.get(trial_id, "unknown")
        close_run(run)
    reindex_or_warn(repo, hashes.values())
    if table is not None:
        table["aim_run"] = table["trial_id"].map(hashes)
        write_atomic(table, d)
    return (f"aim-sync {spec.name}: {created} runs created, {extended} runs extended, {orphaned} orphaned runs"
            f" archived, Aim repo {repo}")


def archive_stored(repo: str, run_hash: str | None) -> int:
    """Archive the stored run of a trial the sweep no longer has (archive_orphan); 1 when it did."""
    if not run_hash or not aim.Repo.from_path(repo).run_exists(run_hash):
        return 0
    run = open_run(repo, run_hash)
    if run.archived:
        close_run(run)
        return 0
    archive_orphan(run)
    return 1
