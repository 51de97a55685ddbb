"""The judge's progress bar (tqdm, on stderr): items sent, answered from the cache and failed, and any
wait the judge is under (Retry-After, pacing, backoff) with what was really waited."""

from __future__ import annotations

import sys
import time

_PROGRESS_INTERVAL_S = 0.1


def progress_bar(client, total: int, desc: str, show: bool):
    """``refresh(force=False)`` and the bar (None when not shown): sent / cached / errors and any wait."""
    bar = None
    if show:
        from tqdm.auto import tqdm  # lazy

        bar = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)
    last_refresh = [0.0]

    def refresh(force: bool = False) -> None:
        now = time.monotonic()
        if bar is None or not (force or now - last_refresh[0] >= _PROGRESS_INTERVAL_S):
            return
        last_refresh[0] = now
        with client._lock:
            s = client.stats
            postfix = {"sent": s.calls, "cached": s.cache_hits, "errors": s.failures}
        caller = client._caller
        wait = max(caller.wait_until, caller.pacer.gate) - now
        if wait > 0.05:
            postfix["waiting"] = f"{wait:.0f}s ({caller.wait_reason})"
        if caller.pacer.interval > 0:
            postfix["paced"] = f"{1 / caller.pacer.interval:.0f}/s"
        if caller.pacer.waited_s >= 0.05:
            postfix["waited"] = f"{caller.pacer.waited_s:.0f}s"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    return bar, refresh
