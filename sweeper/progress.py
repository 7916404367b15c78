"""Progress display (trials running / done / best so far / ETA) and bookkeeping of the sweep directory.

The line's `best` is the best value of the metric any trial has reported so far, under the spec's
mode (it never gets worse, as in Tune's and W&B's summaries), with the configuration, seed and step
that reached it; ETA appears once a trial has ended: the trials left times the sweep's time per
ended trial so far. On a terminal the line is redrawn in place; in a log file it is written when it
changes and at least every LOG_EVERY_S seconds, so a log never stays silent while trials train.

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

LOG_EVERY_S = 30.0
"""In a log file (not a terminal): the longest time between two progress lines (`--progress-every`; 0: on change only)."""

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
        self._best_seen: tuple | None = None
        """(value, config id, seed, step) of the best metric value reported so far."""
        self._last_write = 0.0
        self._ended_before = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stream"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a sweep pickled by an older version lacks the newer attributes
        self.__dict__.update({"max_failed": None, "_config_ids": {}, "_said_no_metric": False, "_best_seen": None,
                              "_last_write": 0.0, "_ended_before": 0, **state})

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
        self._ended_before = sum("ended_at" in t for t in self._times.values())  # a resumed sweep's ETA counts this run only

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
        self._note_best(trial, result)

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
        elapsed = time.time() - self._t0
        text = f"[{self.name}] {_clock(elapsed)}  trials: {running} running, {done + err}/{self.total} done"
        problems = [f"{n} {word}" for n, word in ((err, "errored"), (diverged, "diverged")) if n]
        text += f" ({', '.join(problems)})" if problems else ""
        if self._best_seen is not None:
            value, config_id, seed, step = self._best_seen
            text += f"  best so far {self.metric}={value:.4f} ({config_id}, seed {seed}, step {step})"
        ended = done + err
        ended_here = ended - self._ended_before
        if ended_here > 0 and ended < self.total:
            text += f"  ETA ~{_clock(elapsed / ended_here * (self.total - ended))}"
        return text

    def _note_best(self, trial, result) -> None:
        """Keep the best value reported so far (any trial, any step) under the spec's mode."""
        value = result.get(self.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        better = (self._best_seen is None or (value > self._best_seen[0] if self.mode == "max" else value < self._best_seen[0]))
        if better:
            self._best_seen = (float(value), self.config_id(trial), self.trial_info.seed_of(trial.config), result.get("step"))

    def _draw(self, trials, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_draw < 1.0:
            return
        self._last_draw = now
        out = self._out()
        line = self.line(trials)
        if out.isatty():
            out.write("\r\033[K" + line)
        elif (_news(line) != _news(self._last_line)  # a log file gets a line per change, not per second,
              or (LOG_EVERY_S > 0 and now - self._last_write >= LOG_EVERY_S)):  # and one at least this often
            out.write(line + "\n")
            self._last_write = now
        out.flush()
        self._last_line = line


def _news(line: str) -> str:
    """The part of a progress line that is news: not the clock, not the ETA (they change every second)."""
    return line.split("  ", 1)[-1].split("  ETA")[0]


def _clock(seconds: float) -> str:
    """12:34, or 1:02:03 past an hour."""
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"

