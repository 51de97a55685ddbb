"""Waits and pacing: how long the endpoint asks us to wait (``retry-after-ms``, ``Retry-After``) and
when the next call may start while it rate-limits. Runs on the judge's one event-loop thread (no locks).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from typing import Any


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (delta-seconds or HTTP-date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            dt = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if dt is None:
            return None
        secs = dt.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(secs):
        return None
    return max(0.0, secs)


class Pacer:
    """When the next call may start.

    Once an endpoint has answered 429 with a Retry-After of ``d`` seconds, calls start one per
    ``pace`` (``max(1.1 x pace, d)`` after a 429, 5% shorter after each success) in the order they
    asked, instead of all at once when the wait ends: a rate-limited endpoint sees about one call per
    free slot, not ``concurrency`` calls per slot. Without a 429 the pace is 0 and nothing waits.
    """

    def __init__(self, cap_s: float):
        self.cap_s = cap_s
        self.gate = 0.0  # monotonic time before which no call starts (a Retry-After)
        self.pace = 0.0  # seconds between call starts while rate-limited
        self._paced_at = 0.0

    async def take_slot(self) -> None:
        """Wait for this call's start time: now, or later while a Retry-After holds every call."""
        now = time.monotonic()
        start = max(now, self.gate)
        if self.pace > 0:
            self.gate = start + self.pace
        if start > now:
            await asyncio.sleep(start - now)

    def hold(self, delay: float, reason: str) -> None:
        """A Retry-After of ``delay`` seconds: no call starts before it has passed."""
        now = time.monotonic()
        self.gate = max(self.gate, now + delay)
        if reason == "HTTP 429":  # at most one 10% increase per pace: a burst of 429s is one event
            grow = now - self._paced_at >= self.pace
            self.pace = min(max(1.1 * self.pace if grow else self.pace, delay), self.cap_s)
            if grow:
                self._paced_at = now

    def success(self) -> None:
        self.pace *= 0.95
