"""The Tune callback that writes one Aim run per trial, from the driver: workers on other nodes need
no access to the repo, and no two processes write one run.

A trial's identity and config come from the results owner (sweeper.run.results.TrialResults), which
resolved the trial once; the run ids go back to it in memory, and to `aim_runs.json` (trial id ->
run hash), which lets a resumed phase continue its trials' runs and `aim-sync` and the end-of-phase
index find them. A run whose trial is not in the resumed experiment (the driver was killed before
Tune saved that trial) is closed as `orphaned` and archived, so the UI and `query_runs` show one run
per trial. Any Aim failure warns once and turns Aim off for the phase; the sweep goes on. That
includes a failure in Aim's own threads (a repo that turned read-only): one warning, no traceback.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from ray import tune

from trm_core.errors import write_text_atomic

from sweeper.aim.repo import ensure_repo, release, warn_unavailable
from sweeper.aim.runs import archive_orphan, close_run, metric_keys, new_run, open_run, track_figures, track_result
from sweeper.run import interrupt
from sweeper.run.results import TrialResults
from sweeper.run.table import ended_status


AIM_PACKAGE = f"{os.sep}aim{os.sep}"
_hooks: list = []
"""threading.excepthook as it was before a phase's callback put its own (restored at the phase's end)."""


def _archive_quietly(run) -> None:
    try:
        archive_orphan(run, timeout_s=10, repo_failed=True)
    except Exception:
        pass


class AimCallback(tune.Callback):
    """Tune callback writing one Aim run per trial. Picklable until `setup` (Tuner pickles it)."""

    def __init__(self, repo: str, experiment: str, sweep: str, phase: str, results: TrialResults, state_file: str):
        self.repo, self.experiment, self.sweep, self.phase = repo, experiment, sweep, phase
        self.results, self.state_file = results, state_file
        self._runs: dict[str, Any] = {}
        self._hashes: dict[str, str] = {}
        self._down = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runs"] = {}
        state["_down"] = False
        return state

    def _guard(self, fn, *args) -> None:
        """Run one Aim operation; the first failure warns once and turns Aim off for this sweep."""
        if self._down:
            return
        try:
            fn(*args)
        except Exception as exc:  # a locked, read-only, full or vanished repo: the sweep goes on
            self._down = True
            self._abandon_runs()
            warn_unavailable(self.repo, exc, self.sweep)

    def _abandon_runs(self) -> None:
        """Close the open runs of a repo that failed, as far as it lets us (a run merely dropped would be
        closed by Aim's finalizer, which waits forever on a repo that refused a write: close_run)."""
        runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            try:
                close_run(run, timeout_s=10, repo_failed=True)
            except Exception:
                pass

    def _aim_thread_failed(self, args) -> bool:
        """threading.excepthook for Aim's own threads (its run-status reporter touches files in the repo
        every few seconds): a repo that stops taking writes is the one warning above, not their tracebacks."""
        frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback else []
        if not isinstance(args.exc_value, Exception) or not any(AIM_PACKAGE in f.filename for f in frames):
            return False
        if not self._down:
            self._down = True  # (the trials' open runs are left to on_experiment_end: this is Aim's thread)
            warn_unavailable(self.repo, args.exc_value, self.sweep)
        return True

    def setup(self, **info) -> None:
        self._guard(self._setup)
        previous = threading.excepthook
        _hooks.append(previous)
        threading.excepthook = lambda args: self._aim_thread_failed(args) or previous(args)

    def _setup(self) -> None:
        if os.path.exists(self.state_file):  # a resumed sweep continues its trials' runs
            self._hashes = json.loads(Path(self.state_file).read_text())
            self.results.note_aim_runs(self._hashes)
        ensure_repo(self.repo)

    def _save_hashes(self) -> None:
        write_text_atomic(self.state_file, json.dumps(self._hashes, indent=1))

    def _open(self, trial) -> Any:
        run = self._runs.get(trial.trial_id)
        if run is not None:
            return run
        old = self._hashes.get(trial.trial_id)
        if old:
            run = open_run(self.repo, old)
        else:
            run = new_run(self.repo, self.experiment, self.sweep, trial.trial_id, self.results.setup_of(trial), self.phase)
            self._hashes[trial.trial_id] = run.hash
            try:
                self._save_hashes()
            except Exception:  # (a full disk) a run that aim_runs.json does not name would be a duplicate later
                del self._hashes[trial.trial_id]
                _archive_quietly(run)
                raise
            self.results.note_aim_runs({trial.trial_id: run.hash})
        run["status"] = "running"
        self._runs[trial.trial_id] = run
        return run

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._guard(self._open, trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        def track(run) -> None:
            step = track_result(run, result, metric_keys(result))
            if isinstance(result.get("eval_tts_figures"), str):
                track_figures(run, json.loads(result["eval_tts_figures"]), step)

        self._guard(lambda: track(self._open(trial)))

    def _close(self, trial, status: str) -> None:
        run = self._open(trial)  # a trial can fail before its first result: it still gets its run
        del self._runs[trial.trial_id]
        run["status"] = status
        run["finished_at"] = time.time()
        close_run(run)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        status = ended_status(trial.last_result or {}, self.results.setup_of(trial).steps)
        self._guard(self._close, trial, status)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._guard(self._close, trial, "error")

    def on_experiment_end(self, trials, **info) -> None:
        if _hooks:
            threading.excepthook = _hooks.pop()
        self._guard(self._end, trials)
        self._abandon_runs()  # after a failure above, close what is open (best effort)
        try:
            release(self.repo)
        except Exception:
            pass

    def _end(self, trials) -> None:
        stopped = "interrupted" if interrupt.interrupted() else "stopped"
        for trial_id in list(self._runs):
            run = self._runs.pop(trial_id)
            run["status"] = stopped
            close_run(run)
        known = {t.trial_id for t in trials}
        for trial_id, run_hash in self._hashes.items():
            if trial_id not in known:
                archive_orphan(open_run(self.repo, run_hash))  # its trial never reached Tune's saved state
