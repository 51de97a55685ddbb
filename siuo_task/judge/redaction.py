"""Redaction: every text the judge writes (errors, logs, replies, provenance, doctor) passes through
:func:`redact` with the secrets in play, so no key or credential reaches an output.

By form: ``Bearer`` and ``Basic`` credentials, the values of ``api-key``, ``Authorization`` and
``Proxy-Authorization`` headers, ``sk-...`` keys and URL user-info (``scheme://user:pass@``). By
value: every secret given (the key, the URL's user-info raw, decoded and in its base64 Basic form, a
proxy's user-info, query tokens), wherever it appears.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

_BEARER_RE = re.compile(r"(?i)\b((?:bearer|basic)\s+)[^\s\"',;}]+")
_HEADER_KEY_RE = re.compile(
    r"(?i)((?:api[-_]?key|(?:proxy-)?authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?)((?:bearer|basic)\s+)?([^\s\"',;}]+)"
)
_SK_RE = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_URL_USERINFO_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^/\s@]+@")


def redact(text: Any, *secrets: str | None) -> str:
    """``text`` with every given secret, bearer or basic credential, api-key/authorization value,
    ``sk-...`` key and URL credential (``scheme://user:pass@``) replaced by ``***``."""
    s = "" if text is None else str(text)
    for secret in sorted((x for x in secrets if x), key=len, reverse=True):  # longest first: a secret may contain another
        s = s.replace(secret, "***")
    s = _BEARER_RE.sub(r"\1***", s)
    s = _HEADER_KEY_RE.sub(lambda m: m.group(1) + (m.group(2) or "") + "***", s)
    s = _SK_RE.sub("sk-***", s)
    s = _URL_USERINFO_RE.sub(r"\1***@", s)
    return s


# Loggers of the HTTP stack under the SDK: at INFO, httpx logs every request's URL (a query token
# with it); their records pass through LOG_FILTER once a judge client has started.
_HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "aiohttp.client", "aiohttp.internal")


class _SecretsFilter(logging.Filter):
    """Redacts the secrets of every judge client started in this process from the HTTP stack's log records."""

    def __init__(self) -> None:
        super().__init__("siuo_task.judge.redaction")
        self._lock = threading.Lock()
        self.secrets: tuple = ()

    def add(self, secrets) -> None:
        with self._lock:
            self.secrets = tuple(dict.fromkeys(self.secrets + tuple(s for s in secrets if s)))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        if secrets:
            message = record.getMessage()
            if any(secret in message for secret in secrets):
                record.msg, record.args = redact(message, *secrets), None
        return True


LOG_FILTER = _SecretsFilter()


def guard_http_logs(secrets) -> None:
    """Keep ``secrets`` out of the HTTP stack's log records (idempotent; the filter adds nothing else)."""
    LOG_FILTER.add(secrets)
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if LOG_FILTER not in logger.filters:
            logger.addFilter(LOG_FILTER)
