"""LLM-judge client for SIUO: any OpenAI-compatible chat-completions endpoint, through the openai SDK.

- :mod:`.config`: ``JudgeConfig``, the ``SIUO_JUDGE_*`` variables, key scoping, request shapes.
- :mod:`.cache`: the cache key, reply entries on disk, the image hash index.
- :mod:`.client`: ``JudgeClient`` (SDK client, concurrency, retries and deadlines, budget, preflight).
- :mod:`.dry_run`: a small local judge for dry runs (``python -m siuo_task.judge.dry_run``).

Nothing here touches the network or imports the SDK at import time.
"""

from .cache import CACHE_FORMAT, cache_key
from .client import (
    BUDGET_ERROR,
    DRY_RUN_FINGERPRINT,
    JudgeClient,
    JudgeFatal,
    JudgeReply,
    JudgeRequest,
    JudgeStats,
    JudgeUnavailable,
    PREFLIGHT_PROMPT,
    parse_retry_after,
)
from .config import (
    DEFAULT_BASE_URL,
    DEFAULT_CACHE_DIR,
    DEFAULT_JUDGE_MODEL,
    JudgeConfig,
    is_azure,
    is_openai_api,
    is_reasoning_model,
    normalized_endpoint,
    redact,
    scoped_key,
)

__all__ = [
    "BUDGET_ERROR", "CACHE_FORMAT", "DEFAULT_BASE_URL", "DEFAULT_CACHE_DIR", "DEFAULT_JUDGE_MODEL",
    "DRY_RUN_FINGERPRINT", "JudgeClient", "JudgeConfig", "JudgeFatal", "JudgeReply", "JudgeRequest",
    "JudgeStats", "JudgeUnavailable", "PREFLIGHT_PROMPT", "cache_key", "is_azure", "is_openai_api", "is_reasoning_model",
    "normalized_endpoint", "parse_retry_after", "redact", "scoped_key",
]
