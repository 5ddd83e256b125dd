"""One live progress line per stage, instead of Ray Tune's table.

On a terminal the line is rewritten in place; in a log file a new line is written only
when the counts change, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ray.tune import Callback

from ..trial import Trial

FINAL_STATES = {"TERMINATED", "ERROR"}


class StageProgress(Callback):
    """One line: ``search: 3/8 done, 2 running, 3 pending | best valid_acc 0.612 (search-004) | 1m12s, ~2m left``
    (the time left: this session's pace so far over the trials not yet ended)."""

    def __init__(self, stage: str, metric: str, mode: str, interval_s: float = 1.0) -> None:
        self.stage, self.metric, self.mode, self.interval_s = stage, metric, mode, interval_s
        self._start = time.monotonic()
        self._last_line = ""
        self._last_print = 0.0
        self._best: tuple[float, str] | None = None  # best value seen so far, over every epoch reported
        self._ended_before: int | None = None  # trials already ended when this session first saw the stage

    def __getstate__(self) -> dict[str, Any]:
        return {"stage": self.stage, "metric": self.metric, "mode": self.mode, "interval_s": self.interval_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def line(self, trials: list[Any]) -> str:
        counts = {"done": 0, "running": 0, "pending": 0, "failed": 0}
        best = self._best
        for trial in trials:
            status = trial.status
            if status == "TERMINATED":
                counts["done"] += 1
            elif status == "ERROR":
                counts["failed"] += 1
            elif status == "RUNNING":
                counts["running"] += 1
            else:
                counts["pending"] += 1
            value = (trial.last_result or {}).get(self.metric)
            if isinstance(value, (int, float)) and value == value:
                key = Trial.from_param(trial.config).key
                if best is None or (value > best[0] if self.mode == "max" else value < best[0]):
                    best = (float(value), key)
        self._best = best
        parts = [f"{counts['done']}/{len(trials)} done", f"{counts['running']} running", f"{counts['pending']} pending"]
        if counts["failed"]:
            parts.append(f"{counts['failed']} failed")
        text = f"{self.stage}: " + ", ".join(parts)
        if best is not None:
            text += f" | best {self.metric} {best[0]:.3f} ({best[1]})"
        return text

    def time_left(self, trials: list[Any], elapsed_s: float) -> float | None:
        """Seconds until every trial has ended, at the pace of the trials that ended in this session (a resumed
        stage's earlier trials left out); None before one has."""
        ended = sum(trial.status in FINAL_STATES for trial in trials)
        if self._ended_before is None:
            self._ended_before = ended
        now_ended = ended - self._ended_before
        if now_ended <= 0 or ended >= len(trials):
            return None
        return elapsed_s / now_ended * (len(trials) - ended)

    def _show(self, trials: list[Any], final: bool = False) -> None:
        text = self.line(trials)
        elapsed = int(time.monotonic() - self._start)
        stamped = f"{text} | {_minutes(elapsed)}"
        left = None if final else self.time_left(trials, elapsed)
        if left is not None:
            stamped += f", ~{_minutes(int(left))} left"
        stream = sys.stderr
        if stream.isatty():
            stream.write("\r" + stamped.ljust(len(self._last_line)) + ("\n" if final else ""))
            stream.flush()
            self._last_line = stamped
        elif text != self._last_line or final:
            stream.write(stamped + "\n")
            stream.flush()
            self._last_line = text

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if now - self._last_print >= self.interval_s:
            self._last_print = now
            self._show(trials)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._show(trials, final=True)


def _minutes(seconds: int) -> str:
    return f"{seconds // 60}m{seconds % 60:02d}s"
