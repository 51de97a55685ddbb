"""Redaction: every text the judge writes (errors, logs, replies, provenance) passes through
:func:`redact` with the secrets in play, so no key or credential reaches an output."""

from __future__ import annotations

import re
from typing import Any

_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
_HEADER_KEY_RE = re.compile(r"(?i)((?:api[-_]?key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+")
_SK_RE = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_URL_USERINFO_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^/\s@]+@")


def redact(text: Any, *secrets: str | None) -> str:
    """``text`` with every given secret, bearer token, api-key/authorization value, ``sk-...`` key
    and URL credential (``scheme://user:pass@``) replaced by ``***``."""
    s = "" if text is None else str(text)
    for secret in secrets:
        if secret:
            s = s.replace(secret, "***")
    s = _BEARER_RE.sub(r"\1***", s)
    s = _HEADER_KEY_RE.sub(r"\1***", s)
    s = _SK_RE.sub("sk-***", s)
    s = _URL_USERINFO_RE.sub(r"\1***@", s)
    return s
