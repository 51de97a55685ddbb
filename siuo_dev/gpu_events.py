"""The GPU check's event log and its time budget.

Every measurement is one JSON object ``{"event": ..., ...}``, printed as a line and appended to
``<out>/gpu_check.jsonl`` the moment it is made, so a run killed by a time limit still leaves what it
measured. :class:`Budget` lets a stage that would not finish in the time left be skipped (with an
event saying so) instead of being killed half way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

LOG: list = []
_FILE: list = []  # the jsonl path once known
START_ENV = "SIUO_GPU_CHECK_START"  # epoch seconds when the whole check began (gpu_check.sh sets it)


def open_log(path: Path) -> None:
    """Start a fresh log at ``path``: events from now on are appended to it as they happen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    LOG.clear()
    _FILE[:] = [path]


def emit(event: str, **fields) -> dict:
    record = {"event": event, **fields}
    line = json.dumps(record, default=str)
    print(line, flush=True)
    LOG.append(record)
    if _FILE:
        with open(_FILE[0], "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return record


def events(kind: str | None = None) -> list:
    return [r for r in LOG if kind is None or r["event"] == kind]


class Budget:
    """Seconds left of ``total`` counted from the check's start (``SIUO_GPU_CHECK_START`` when the
    shell wrapper set it, else now); ``total`` of 0 or less: no limit."""

    def __init__(self, total: float, start: float | None = None):
        self.total = float(total or 0)
        env_start = os.environ.get(START_ENV)
        self.start = start if start is not None else (float(env_start) if env_start else time.time())

    def elapsed(self) -> float:
        return time.time() - self.start

    def left(self) -> float | None:
        return None if self.total <= 0 else self.total - self.elapsed()

    def allows(self, estimate_s: float) -> bool:
        left = self.left()
        return left is None or estimate_s <= left

    def skip_unless_fits(self, stage: str, estimate_s: float) -> bool:
        """True when ``stage`` fits; otherwise emits ``skipped`` (with the estimate) and returns False."""
        if self.allows(estimate_s):
            return True
        emit(
            "skipped", stage=stage, reason="time budget", estimate_s=round(estimate_s), left_s=round(self.left() or 0), budget_s=self.total
        )
        return False
