"""What a judge client counts over its life: calls, cache hits, failures, retries, tokens, waits
(reported in a result's ``provenance.judge.usage`` and on the progress bar)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class JudgeStats:  # cumulative per client
    calls: int = 0  # judge requests actually sent (retries included, the preflight not)
    cache_hits: int = 0
    failures: int = 0  # requests that ended with text None
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    budget_exhausted: bool = False
    deduped: int = 0  # requests answered by an identical request in the same run()
    waited_s: float = 0.0  # wall time during which at least one call was held back (Retry-After, pacing, backoff)
    preflight_calls: int = 0
    dry_run_replies: int = 0  # replies marked by the dry-run judge
