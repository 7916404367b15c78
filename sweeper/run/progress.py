"""The progress line of a running phase: trials running / done, the best value so far and an ETA.

`best so far` is the best value of the metric any trial has reported, under the spec's mode (it never
gets worse, as in Tune's and W&B's summaries), with the configuration, seed and step that reached it;
the ETA appears once a trial has ended: the trials left times the phase's time per ended trial so
far. On a terminal the line is redrawn in place; in a log file it is written when it changes and at
least every LOG_EVERY_S seconds, so a log never stays silent while trials train.

The results owner (sweeper.run.results.TrialResults) feeds it; nothing here touches files or Tune.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from sweeper.run.trial import DIVERGED_KEY, TrialSetup

LOG_EVERY_S = 30.0
"""In a log file (not a terminal): the longest time between two progress lines. The process's setting
(`--progress-every`; 0: on change only), read at every draw, so a resumed sweep takes the new value."""


class ProgressLine:
    def __init__(self, name: str, metric: str, mode: str, total: int, stream=None):
        self.name, self.metric, self.mode, self.total = name, metric, mode, total
        self.stream = stream
        self.t0 = time.time()
        self.ended_before = 0
        """Trials that had ended when this driver started (a resumed sweep's ETA counts this run only)."""
        self.best: tuple | None = None
        """(value, config id, seed, step) of the best metric value reported so far."""
        self._last_line = ""
        self._last_draw = 0.0
        self._last_write = 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None}  # a stream does not pickle (Tune pickles its callbacks)

    def start(self, ended_before: int) -> None:
        self.t0, self.ended_before = time.time(), ended_before

    def out(self):
        return self.stream or sys.stderr

    def note(self, setup: TrialSetup, result: dict[str, Any]) -> None:
        """Keep the best value reported so far (any trial, any step) under the spec's mode."""
        value = result.get(self.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        if self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0]):
            self.best = (float(value), setup.config_id, setup.seed, result.get("step"))

    def line(self, trials) -> str:
        status = [str(t.status) for t in trials]
        done = sum(s == "TERMINATED" for s in status)
        err = sum(s == "ERROR" for s in status)
        running = sum(s == "RUNNING" for s in status)
        diverged = sum(bool((t.last_result or {}).get(DIVERGED_KEY)) for t in trials)
        elapsed = time.time() - self.t0
        text = f"[{self.name}] {_clock(elapsed)}  trials: {running} running, {done + err}/{self.total} done"
        problems = [f"{n} {word}" for n, word in ((err, "errored"), (diverged, "diverged")) if n]
        text += f" ({', '.join(problems)})" if problems else ""
        if self.best is not None:
            value, config_id, seed, step = self.best
            text += f"  best so far {self.metric}={value:.4f} ({config_id}, seed {seed}, step {step})"
        ended = done + err
        ended_here = ended - self.ended_before
        if ended_here > 0 and ended < self.total:
            text += f"  ETA ~{_clock(elapsed / ended_here * (self.total - ended))}"
        return text

    def draw(self, trials, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_draw < 1.0:
            return
        self._last_draw = now
        out = self.out()
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
