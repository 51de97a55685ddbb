"""LLM-judge client for SIUO: any OpenAI-compatible chat-completions endpoint, through the openai SDK.

Implements the :class:`siuo_task.core.judging.Judge` protocol the scoring core declares
(``JudgeRequest``, ``JudgeReply`` and ``Judge`` are re-exported here).

- :mod:`.endpoint`: the endpoint resolved once (``Endpoint``: kind, URL, auth header, API version,
  where the URL and key came from) and key scoping.
- :mod:`.config`: ``JudgeConfig``, the ``SIUO_JUDGE_*`` variables, request shapes.
- :mod:`.client`: ``JudgeClient`` (run, cache, de-duplication, budget, progress, preflight).
- :mod:`.transport`: SDK clients, proxies and the event-loop thread; :mod:`.retry`: one request
  with the retry policy and what an error means; :mod:`.pacing`: waits and rate limits;
  :mod:`.images`: data URLs and image hashes; :mod:`.cache`: the disk cache; :mod:`.redaction`: no
  secret in any output; :mod:`.errors`.
- :mod:`.dry_run`: a small local judge for dry runs (``python -m siuo_task.judge.dry_run``).

Nothing here touches the network or imports the SDK at import time.
"""

from siuo_task.core.judging import Judge, JudgeReply, JudgeRequest

from . import host_vars  # noqa: F401 - lmms-eval's judge variables (siuo_task.judge.host_vars)
from .cache import CACHE_FORMAT, cache_key
from .client import (
    BUDGET_ERROR,
    DRY_RUN_FINGERPRINT,
    PREFLIGHT_PROMPT,
    JudgeClient,
    JudgeStats,
)
from .config import (
    DEFAULT_BASE_URL,
    DEFAULT_CACHE_DIR,
    DEFAULT_JUDGE_MODEL,
    JudgeConfig,
    is_reasoning_model,
)
from .endpoint import Endpoint, is_azure, is_openai_api, normalized_endpoint, scoped_key
from .errors import JudgeFatal, JudgeUnavailable
from .pacing import parse_retry_after
from .redaction import redact

__all__ = [
    "BUDGET_ERROR",
    "CACHE_FORMAT",
    "DEFAULT_BASE_URL",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_JUDGE_MODEL",
    "DRY_RUN_FINGERPRINT",
    "Endpoint",
    "Judge",
    "JudgeClient",
    "JudgeConfig",
    "JudgeFatal",
    "JudgeReply",
    "JudgeRequest",
    "JudgeStats",
    "JudgeUnavailable",
    "PREFLIGHT_PROMPT",
    "cache_key",
    "is_azure",
    "is_openai_api",
    "is_reasoning_model",
    "normalized_endpoint",
    "parse_retry_after",
    "redact",
    "scoped_key",
]
