"""Progress display (trials running / done / best) and bookkeeping of the sweep directory.

A Tune callback on the driver: it records when each trial started and ended (the evidence that
fractional-GPU trials overlap), where it runs (host, pid) and its last step, counts retries and
failed trials, and rewrites the results table after every finished trial. Its state lives in files
(trial_times.json), so a resumed sweep picks it up again. A trial still running when the sweep is
interrupted (or stopped past its failure budget) is marked `interrupted`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from ray import tune

from sweeper import interrupt, results

_FAILED: dict[str, int] = {}
"""Failed trials per sweep directory, read by FailureBudget (both live in the driver process)."""


def failed_trials(sweep_dir: str) -> int:
    return _FAILED.get(str(sweep_dir), 0)


class FailureBudget(tune.Stopper):
    """Stop the whole sweep once more than `max_failed` trials have failed for good (after retries)."""

    def __init__(self, sweep_dir: str, max_failed: int):
        self.sweep_dir, self.max_failed = str(sweep_dir), max_failed

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return failed_trials(self.sweep_dir) > self.max_failed


class ProgressCallback(tune.Callback):
    def __init__(self, sweep_dir: str, name: str, metric: str, mode: str, total: int, trial_info, stream=None,
                 max_failed: int | None = None):
        self.sweep_dir, self.name, self.metric, self.mode = sweep_dir, name, metric, mode
        self.max_failed = max_failed
        self.total, self.trial_info = total, trial_info
        self._stream = stream
        self._times: dict[str, dict[str, Any]] = {}
        self._t0 = time.time()
        self._last_line = ""
        self._last_draw = 0.0
        self._config_ids: dict[str, str] = {}
        self._said_no_metric = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stream"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a sweep pickled by an older version lacks the newer attributes
        self.__dict__.update({"max_failed": None, "_config_ids": {}, "_said_no_metric": False, **state})

    @property
    def times_file(self) -> Path:
        return Path(self.sweep_dir) / "trial_times.json"

    @property
    def hashes_file(self) -> Path:
        return Path(self.sweep_dir) / "aim_runs.json"

    def setup(self, **info) -> None:
        self._t0 = time.time()
        if self.times_file.exists():
            self._times = json.loads(self.times_file.read_text())
        _FAILED[self.sweep_dir] = sum(bool(t.get("failed")) for t in self._times.values())

    # -- Tune hooks ------------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        t = self._times.setdefault(trial.trial_id, {})
        t["started_at"] = time.time()
        for key in ("interrupted", "first_result_at", "first_elapsed_s"):
            t.pop(key, None)
        self._save_times()
        self._draw(trials, force=True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        t = self._times.setdefault(trial.trial_id, {})
        t["retries"] = t.get("retries", 0) + 1
        self._save_times()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finish(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._times.setdefault(trial.trial_id, {})["failed"] = True
        _FAILED[self.sweep_dir] = failed_trials(self.sweep_dir) + 1
        self._finish(trials, trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if self.metric not in result and results.DIVERGED_KEY not in result and not self._said_no_metric:
            self._said_no_metric = True
            reported = ", ".join(sorted(k for k in result if "/" in k)[:8])
            self._out().write(f"\nwarning: trial {trial.trial_id} reported no {self.metric} (it reports {reported}, ...);"
                              f" check `metric:` in the spec\n")
        t = self._times.setdefault(trial.trial_id, {})
        if "first_result_at" not in t and isinstance(result.get("time/elapsed_s"), (int, float)):
            # when the trainer's clock started, from the driver's side: the trial's start-up latency
            t.update(first_result_at=time.time(), first_elapsed_s=result["time/elapsed_s"])
        t.update(pid=result.get("pid"), host=result.get("hostname"), last_step=result.get("step"))
        self._save_times()

    def on_step_end(self, iteration, trials, **info) -> None:
        self._draw(trials)

    def on_experiment_end(self, trials, **info) -> None:
        # Trials Tune stopped at the end without completing them: Ctrl-C, SIGTERM or the failure budget.
        over_budget = self.max_failed is not None and failed_trials(self.sweep_dir) > self.max_failed
        if interrupt.interrupted() or over_budget:
            for t in trials:
                times = self._times.get(t.trial_id, {})
                if str(t.status) == "TERMINATED" and "started_at" in times and "ended_at" not in times:
                    times["interrupted"] = True
            self._save_times()
        self.write_table(trials)
        self._draw(trials, force=True)
        self._out().write("\n")

    # -- helpers ---------------------------------------------------------------------------------
    def _finish(self, trials, trial) -> None:
        self._times.setdefault(trial.trial_id, {})["ended_at"] = time.time()
        self._save_times()
        self.write_table(trials)
        self._draw(trials, force=True)

    def _save_times(self) -> None:
        Path(self.sweep_dir).mkdir(parents=True, exist_ok=True)
        results.write_json_atomic(self.times_file, self._times)

    def write_table(self, trials) -> None:
        hashes = json.loads(self.hashes_file.read_text()) if self.hashes_file.exists() else {}
        df = results.build_table(trials, self.trial_info, self.metric, self._times, hashes)
        results.write_atomic(df, Path(self.sweep_dir))

    def _out(self):
        return self._stream or sys.stderr

    def config_id(self, trial) -> str:
        """The id the summary table uses too: one per sampled configuration, shared by its seeds."""
        if trial.trial_id not in self._config_ids:
            self._config_ids[trial.trial_id] = self.trial_info(trial.config)["config_id"]
        return self._config_ids[trial.trial_id]

    def line(self, trials) -> str:
        status = [str(t.status) for t in trials]
        done = sum(s == "TERMINATED" for s in status)
        err = sum(s == "ERROR" for s in status)
        running = sum(s == "RUNNING" for s in status)
        diverged = sum(bool((t.last_result or {}).get(results.DIVERGED_KEY)) for t in trials)
        best = self._best(trials)
        elapsed = time.strftime("%M:%S", time.gmtime(time.time() - self._t0))
        text = f"[{self.name}] {elapsed}  trials: {running} running, {done + err}/{self.total} done"
        problems = [f"{n} {word}" for n, word in ((err, "errored"), (diverged, "diverged")) if n]
        text += f" ({', '.join(problems)})" if problems else ""
        if best is not None:
            text += f"  best {self.metric}={best[0]:.4f} ({best[1]}, seed {best[2]})"
        return text

    def _best(self, trials):
        scored = [(t.last_result[self.metric], self.config_id(t), self.trial_info.seed_of(t.config)) for t in trials
                  if t.last_result and isinstance(t.last_result.get(self.metric), (int, float))
                  and math.isfinite(t.last_result[self.metric])]
        if not scored:
            return None
        scored.sort(key=lambda x: x[1])  # ties go to the smallest config id, as in the summary table
        key = (lambda x: x[0])
        return max(scored, key=key) if self.mode == "max" else min(scored, key=key)

    def _draw(self, trials, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_draw < 1.0:
            return
        self._last_draw = now
        out = self._out()
        line = self.line(trials)
        if out.isatty():
            out.write("\r\033[K" + line)
        elif line.split("  ", 1)[-1] != self._last_line.split("  ", 1)[-1]:
            out.write(line + "\n")  # a log file gets a line per change, not per second
        out.flush()
        self._last_line = line
