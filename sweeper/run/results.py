"""The one owner of a phase's results: a Tune callback on the driver that keeps every trial's setup,
times and Aim run, writes results.csv / results.parquet and trial_times.json, counts failed trials
and feeds the progress line.

- Setups: each trial is resolved once, the first time it is met (`setup(trial)`); the Aim callback
  reads the same TrialSetup from here, so no callback resolves or validates a config again.
- Aim run ids reach it in memory (`note_aim_runs`, from sweeper.aim.callback.AimCallback).
- trial_times.json records when each trial started and ended (the evidence that fractional-GPU trials
  overlap), where it runs (host, pid), its last step and retries; a resumed phase reads it back.
- A trial still running when the phase is interrupted (or stopped past its failure budget) is
  marked `interrupted`; `FailureBudget` stops the phase once more than `failure.max_failed_trials`
  trials have failed for good, reading this owner's count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from ray import tune

from sweeper.run import interrupt
from sweeper.run.progress import ProgressLine
from sweeper.run.table import trial_row, write_atomic, write_json_atomic
from sweeper.run.trial import DIVERGED_KEY, PREEMPTED_KEY, TIMES_FILE, SweepBase, TrialSetup


class TrialResults(tune.Callback):
    def __init__(self, phase_dir: str | Path, base: SweepBase, line: ProgressLine, max_failed: int | None = None):
        self.dir, self.base, self.line, self.max_failed = Path(phase_dir), base, line, max_failed
        self.setups: dict[str, TrialSetup] = {}
        self.times: dict[str, dict[str, Any]] = {}
        self.aim_runs: dict[str, str] = {}
        self.failed = 0
        """Trials that failed for good (after their retries), this phase's resumed runs included."""
        self._said_no_metric = False

    @property
    def times_file(self) -> Path:
        return self.dir / TIMES_FILE

    def setup(self, **info) -> None:
        if self.times_file.exists():
            self.times = json.loads(self.times_file.read_text())
        self.failed = sum(bool(t.get("failed")) for t in self.times.values())
        self.line.start(ended_before=sum("ended_at" in t for t in self.times.values()))

    # -- what the other callbacks read and hand in ------------------------------------------------
    def setup_of(self, trial) -> TrialSetup:
        """The trial's setup, resolved the first time it is asked for."""
        if trial.trial_id not in self.setups:
            self.setups[trial.trial_id] = self.base.resolve(trial.config)
        return self.setups[trial.trial_id]

    def note_aim_runs(self, runs: dict[str, str]) -> None:
        """trial id -> Aim run hash, from the Aim callback (at its setup, and for each new run)."""
        self.aim_runs.update(runs)

    def over_budget(self) -> bool:
        return self.max_failed is not None and self.failed > self.max_failed

    # -- Tune hooks ------------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        t = self.times.setdefault(trial.trial_id, {})
        t["started_at"] = time.time()
        for key in ("interrupted", "first_result_at", "first_elapsed_s"):
            t.pop(key, None)
        self._save_times()
        self.line.draw(trials, force=True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        t = self.times.setdefault(trial.trial_id, {})
        t["retries"] = t.get("retries", 0) + 1
        self._save_times()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        quiet = DIVERGED_KEY in result or PREEMPTED_KEY in result  # no metric there, on purpose
        missing = [m for m in self.base.objectives if m not in result]
        if missing and not quiet and not self._said_no_metric:
            self._said_no_metric = True
            reported = ", ".join(sorted(k for k in result if "/" in k)[:8])
            self.line.out().write(f"\nwarning: trial {trial.trial_id} reported no {', '.join(missing)} (it reports"
                                  f" {reported}, ...); check `metric:` in the spec\n")
        t = self.times.setdefault(trial.trial_id, {})
        if "first_result_at" not in t and isinstance(result.get("time/elapsed_s"), (int, float)):
            # when the trainer's clock started, from the driver's side: the trial's start-up latency
            t.update(first_result_at=time.time(), first_elapsed_s=result["time/elapsed_s"])
        t.update(pid=result.get("pid"), host=result.get("hostname"), last_step=result.get("step"))
        self._save_times()
        self.line.note(self.setup_of(trial), result)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finish(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.times.setdefault(trial.trial_id, {})["failed"] = True
        self.failed += 1
        self._finish(trials, trial)

    def on_step_end(self, iteration, trials, **info) -> None:
        self.line.draw(trials)

    def on_experiment_end(self, trials, **info) -> None:
        # Trials Tune stopped at the end without completing them: Ctrl-C, SIGTERM or the failure budget.
        if interrupt.interrupted() or self.over_budget():
            for t in trials:
                times = self.times.get(t.trial_id, {})
                if str(t.status) == "TERMINATED" and "started_at" in times and "ended_at" not in times:
                    times["interrupted"] = True
            self._save_times()
        self.write_table(trials)
        self.line.draw(trials, force=True)
        self.line.out().write("\n")

    # -- files -----------------------------------------------------------------------------------
    def _finish(self, trials, trial) -> None:
        self.times.setdefault(trial.trial_id, {})["ended_at"] = time.time()
        self._save_times()
        self.write_table(trials)
        self.line.draw(trials, force=True)

    def _save_times(self) -> None:
        write_json_atomic(self.times_file, self.times)

    def table(self, trials) -> pd.DataFrame:
        return pd.DataFrame([trial_row(t, self.setup_of(t), self.base.objectives, self.times.get(t.trial_id, {}),
                                       self.aim_runs.get(t.trial_id)) for t in trials])

    def write_table(self, trials) -> None:
        write_atomic(self.table(trials), self.dir)


class FailureBudget(tune.Stopper):
    """Stop the whole phase once more than `failure.max_failed_trials` trials have failed for good."""

    def __init__(self, results: TrialResults):
        self.results = results

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.results.over_budget()
