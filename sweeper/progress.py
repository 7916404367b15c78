"""Progress display (trials running / done / best) and bookkeeping of the sweep directory.

A Tune callback on the driver: it records when each trial started and ended (the evidence that
fractional-GPU trials overlap), where it runs (host, pid) and its last step, counts retries, and rewrites the results table after every
finished trial. Its state lives in files, so a resumed sweep picks it up again.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from ray import tune

from sweeper import results


class ProgressCallback(tune.Callback):
    def __init__(self, sweep_dir: str, name: str, metric: str, mode: str, total: int, trial_info, stream=None):
        self.sweep_dir, self.name, self.metric, self.mode = sweep_dir, name, metric, mode
        self.total, self.trial_info = total, trial_info
        self._stream = stream
        self._times: dict[str, dict[str, Any]] = {}
        self._t0 = time.time()
        self._last_line = ""
        self._last_draw = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stream"] = None
        return state

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

    # -- Tune hooks ------------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._times.setdefault(trial.trial_id, {})["started_at"] = time.time()
        self._save_times()
        self._draw(trials, force=True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        t = self._times.setdefault(trial.trial_id, {})
        t["retries"] = t.get("retries", 0) + 1
        self._save_times()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finish(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._finish(trials, trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        t = self._times.setdefault(trial.trial_id, {})
        t.update(pid=result.get("pid"), host=result.get("hostname"), last_step=result.get("step"))
        self._save_times()

    def on_step_end(self, iteration, trials, **info) -> None:
        self._draw(trials)

    def on_experiment_end(self, trials, **info) -> None:
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

    def line(self, trials) -> str:
        status = [str(t.status) for t in trials]
        done = sum(s == "TERMINATED" for s in status)
        err = sum(s == "ERROR" for s in status)
        running = sum(s == "RUNNING" for s in status)
        best = self._best(trials)
        elapsed = time.strftime("%M:%S", time.gmtime(time.time() - self._t0))
        text = f"[{self.name}] {elapsed}  trials: {running} running, {done + err}/{self.total} done"
        text += f" ({err} errored)" if err else ""
        if best is not None:
            text += f"  best {self.metric}={best[0]:.4f} ({best[1]})"
        return text

    def _best(self, trials):
        scored = [(t.last_result[self.metric], t.trial_id) for t in trials
                  if t.last_result and isinstance(t.last_result.get(self.metric), (int, float))]
        if not scored:
            return None
        return max(scored) if self.mode == "max" else min(scored)

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
