"""Waits and pacing: how long the endpoint asks us to wait, and when the next call may start while it
rate-limits. A wait costs what the endpoint asks, no more.

- A ``Retry-After`` (``retry-after-ms`` first, as OpenAI sends it; then ``Retry-After``; then a 429's
  ``x-ratelimit-reset-*``) holds every call start until it has passed: the calls in flight finish,
  none starts, and all resume at full speed when it ends. It leaves nothing behind.
- Pacing spaces call starts only when the endpoint shows a steady limit. With
  ``x-ratelimit-limit-requests`` (per minute, as OpenAI sends it): 1% under that limit while a 429
  or a reply says fewer requests remain than the calls in flight, unpaced again once more remain.
  Without it, a 429 whose wait is under a second is read as a token bucket's time to its next token:
  the calls released after it are spaced by that wait, tentatively (halved every quarter second
  without another 429). When a call that started after the wait had ended is refused again, the limit
  is steady: the spacing becomes at least that wait, 10% wider at each such 429 and 10% narrower
  after each second without one. Under a millisecond the spacing is gone. A 429 asking a second or
  more (a window's reset) only holds the starts, however many calls in flight it hit.
- ``waited_s`` is wall time during which at least one call was held back (by a Retry-After, the
  pacing or a backoff): the union of the waits, not their sum.

Runs on the judge's one event-loop thread (no locks). ``clock`` is injectable for tests.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

TOKEN_WAIT_S = 1.0  # a 429 asking for less than this is taken as a token bucket's time to its next token
RELAX_EVERY_S = 1.0  # under a steady limit the spacing shrinks by RELAX_FACTOR after each such span without a 429
RELAX_FACTOR = 0.9
TENTATIVE_EVERY_S = 0.25  # after a first 429 the spacing is tentative: halved after each such span without a 429
MIN_INTERVAL_S = 0.001  # below this the pacing is dropped
BACKOFF_FACTOR = 1.1  # a 429 under a steady limit widens the spacing by this much (at least to its wait)
LIMIT_MARGIN = 1.01  # pace 1% under a stated limit: arrival jitter then never empties the limiter
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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


def parse_duration(text: Any) -> float | None:
    """Seconds of an ``x-ratelimit-reset-*`` value (``"20ms"``, ``"1.5s"``, ``"6m0s"``, ``"1h2m"``, a bare number)."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip().lower()
    try:
        value = float(text)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _number(headers: Any, name: str) -> float | None:
    try:
        value = float(headers.get(name))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def limiter_hints(headers: Any) -> dict:
    """What the ``x-ratelimit-*`` headers say about requests: ``interval`` (60 s / the per-minute
    limit), ``remaining`` and ``reset`` (seconds until the limit is whole again); absent keys: not sent."""
    if headers is None:
        return {}
    hints: dict = {}
    limit = _number(headers, "x-ratelimit-limit-requests")
    if limit:
        hints["interval"] = 60.0 / limit
    remaining = _number(headers, "x-ratelimit-remaining-requests")
    if remaining is not None:
        hints["remaining"] = remaining
    resets = [
        d
        for d in (parse_duration(headers.get("x-ratelimit-reset-requests")), parse_duration(headers.get("x-ratelimit-reset-tokens")))
        if d is not None
    ]
    if resets:
        hints["reset"] = max(resets)
    return hints


def wait_asked(headers: Any, rate_limited: bool = False) -> float | None:
    """How long an error reply asks to wait: ``retry-after-ms``, ``Retry-After``, else (a 429,
    ``rate_limited``) its ``x-ratelimit-reset-*``; None when it names no wait."""
    delay = parse_retry_after(headers)
    if delay is None and rate_limited:
        delay = limiter_hints(headers).get("reset")
    return delay


class Pacer:
    """When the next call may start (see the module docstring), and how long calls were held back."""

    def __init__(self, cap_s: float, clock: Callable[[], float] = time.monotonic, binding: int = 1):
        self.cap_s = cap_s
        self.clock = clock
        self.binding = binding  # a limit with fewer requests remaining than this binds (the client's concurrency)
        self.gate = 0.0  # no call starts before this (a Retry-After)
        self.interval = 0.0  # seconds between call starts while a steady limit shows; 0: unpaced
        self.by_limit = False  # the interval is the endpoint's stated per-minute limit (else estimated from waits)
        self.tentative = False  # the interval comes from a first 429 only: let go fast unless another follows
        self._last_start = -math.inf
        self._queue: deque = deque()  # (future, time asked) of the calls waiting to start
        self._releaser: asyncio.Future | None = None
        self.waited_s = 0.0  # union of the waits
        self._covered = -math.inf  # end of the union so far
        self._relaxed_at = 0.0
        self._hold_end: float | None = None  # when the last Retry-After ended: a 429 for a call started later is no one-off

    # -- the waits
    def cover(self, start: float, end: float) -> None:
        """Count ``[start, end)`` as waited (the part not counted yet). Waits begin in time order."""
        if end <= self._covered:
            return
        self.waited_s += (end - start) if start >= self._covered else (end - self._covered)
        self._covered = end

    def _relax(self, now: float) -> None:
        if self.interval <= 0 or self.by_limit:
            return
        every, factor = (TENTATIVE_EVERY_S, 0.5) if self.tentative else (RELAX_EVERY_S, RELAX_FACTOR)
        spans = math.floor((now - self._relaxed_at) / every)
        if spans > 0:
            self.interval *= factor**spans
            self._relaxed_at += spans * every
            if self.interval < MIN_INTERVAL_S:
                self.interval, self.tentative = 0.0, False

    # -- the starts: callers queue in order; each start is decided when it is due, not booked ahead,
    # so a Retry-After or a spacing that changes while calls wait applies to every waiting call.
    def next_start(self, now: float) -> float:
        """When the next call may start: the end of a Retry-After, one spacing after the last start,
        or earlier than ``now`` when nothing holds it."""
        self._relax(now)
        due = self.gate
        if self.interval > 0:
            due = max(due, self._last_start + self.interval)
        return due

    def started(self, at: float, asked: float, due: float) -> None:
        """A call that asked to start at ``asked`` started at ``at``; what held it ended at ``due``."""
        self._last_start = at
        if due > asked:
            self.cover(asked, due)

    def slot(self) -> float:
        """For one caller with nobody queued: take the next start; seconds until it (0: now)."""
        now = self.clock()
        due = self.next_start(now)
        self.started(max(now, due), now, due)
        return max(0.0, due - now)

    async def take_slot(self) -> None:
        """Wait for this call's turn to start (in the order the calls asked)."""
        now = self.clock()
        if not self._queue and self.next_start(now) <= now:
            self.started(now, now, now)
            return
        waiter = asyncio.get_running_loop().create_future()
        self._queue.append((waiter, now))
        if self._releaser is None or self._releaser.done():
            self._releaser = asyncio.ensure_future(self._release())
        await waiter

    async def _release(self) -> None:
        while self._queue:
            now = self.clock()
            due = self.next_start(now)
            if due > now:  # wake at the turn, or sooner to see a spacing relax
                await asyncio.sleep(min(due - now, TENTATIVE_EVERY_S))
                continue
            waiter, asked = self._queue.popleft()
            if waiter.done():  # its caller was cancelled
                continue
            self.started(due if now - due < 0.005 else now, asked, due)  # a timer's few ms late do not slow the pace
            waiter.set_result(None)
            await asyncio.sleep(0)  # let it send before the next is released

    def stop(self) -> None:
        """Drop the waiting calls' turns (their callers were cancelled) and the releaser with them."""
        self._queue.clear()
        if self._releaser is not None and not self._releaser.done():
            self._releaser.cancel()

    async def sleep(self, delay: float) -> None:
        """One call's own wait (a backoff): counted, other calls go on."""
        now = self.clock()
        self.cover(now, now + delay)
        await asyncio.sleep(delay)

    # -- what the endpoint says
    def hold(self, delay: float, rate_limited: bool = False, hints: dict | None = None, started: float | None = None) -> None:
        """A Retry-After of ``delay`` seconds (capped): no call starts before it has passed.

        For a 429 (``rate_limited``): a per-minute limit in ``hints`` paces the starts at that limit;
        else, when the call had ``started`` after the last Retry-After ended (waiting did not clear the
        limit: a steady limit, not a one-off) and the wait is under a second (a token bucket's time to
        its next token), the spacing grows by 10% and to at least that wait.
        """
        now = self.clock()
        delay = min(delay, self.cap_s)
        steady = rate_limited and self._hold_end is not None and started is not None and started >= self._hold_end
        end = now + delay
        if end > self.gate:
            self.gate = end
        if delay > 0:
            if now >= self._covered:  # exact for a lone wait
                self.waited_s += delay
                self._covered = end
            else:
                self.cover(now, end)
        if rate_limited:
            self._hold_end = self.gate
            limit = (hints or {}).get("interval")
            if limit:
                self._pace(limit * LIMIT_MARGIN, now, by_limit=True)
                self.tentative = False
            elif delay < TOKEN_WAIT_S and not self.by_limit:
                if steady:
                    self._pace(max(self.interval * BACKOFF_FACTOR, delay), now)
                    self.tentative = False
                elif self.interval == 0 or self.tentative:
                    self._pace(delay, now)
                    self.tentative = True

    def observe(self, hints: dict) -> None:
        """A successful reply's ``x-ratelimit-*`` hints: a per-minute limit with fewer requests remaining
        than the client's concurrency paces the starts at that limit before any 429; once more remain,
        the pacing it set ends."""
        limit, remaining = hints.get("interval"), hints.get("remaining")
        if not limit or remaining is None:
            return
        if remaining < self.binding:
            self._pace(limit * LIMIT_MARGIN, self.clock(), by_limit=True)
            self.tentative = False
        elif self.by_limit:
            self.interval, self.by_limit = 0.0, False

    def _pace(self, interval: float, now: float, by_limit: bool = False) -> None:
        self._relax(now)
        self.interval = min(max(self.interval, interval) if by_limit == self.by_limit else interval, self.cap_s)
        self.by_limit = by_limit
        self._relaxed_at = now
