"""LLM-judge client for SIUO: any OpenAI-compatible chat-completions endpoint.

Synchronous API, bounded concurrency (a shared ``httpx.Client`` plus a
``ThreadPoolExecutor``), a crash-safe on-disk cache, retries with backoff,
an optional token budget and a cheap preflight check.

Nothing here touches the network or does heavy work at import time; ``httpx``,
``tqdm`` and ``PIL`` are imported lazily where needed.

The API key is never written to exceptions, logs, reprs, cache files or replies:
error text that might echo request data goes through :func:`redact`.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DEFAULT_JUDGE_MODEL",
    "DEFAULT_BASE_URL",
    "DEFAULT_CACHE_DIR",
    "JudgeUnavailable",
    "JudgeConfig",
    "JudgeRequest",
    "JudgeReply",
    "JudgeStats",
    "JudgeClient",
    "redact",
]

logger = logging.getLogger(__name__)

DEFAULT_JUDGE_MODEL = "gpt-4o-mini-2024-07-18"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_CACHE_DIR = "~/.cache/siuo_task/judge"

BUDGET_ERROR = "token budget reached"
_CACHE_FORMAT = 1
_IMAGE_LRU_SIZE = 8
_PREFLIGHT_TIMEOUT_S = 10.0
_MAX_ERROR_CHARS = 300


class JudgeUnavailable(RuntimeError):
    """The judge endpoint cannot be used (missing key, unreachable, key rejected)."""


# --------------------------------------------------------------------------- redaction

_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
_HEADER_KEY_RE = re.compile(r"(?i)((?:api[-_]?key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+")
_SK_RE = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_URL_USERINFO_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^/\s@]+@")


def redact(text: Any, *secrets: str | None) -> str:
    """Return ``text`` with secrets removed.

    Every non-empty string in ``secrets`` is replaced by ``***``; bearer tokens,
    ``api-key``/``authorization`` header values, ``sk-...`` style keys and URL
    credentials (``scheme://user:pass@``) are masked as well.
    """
    s = "" if text is None else str(text)
    for secret in secrets:
        if secret:
            s = s.replace(secret, "***")
    s = _BEARER_RE.sub(r"\1***", s)
    s = _HEADER_KEY_RE.sub(r"\1***", s)
    s = _SK_RE.sub("sk-***", s)
    s = _URL_USERINFO_RE.sub(r"\1***@", s)
    return s


def _short(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- config


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _parse_int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw.strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {raw!r}")
    return value


def _parse_float(name: str, raw: str, minimum: float, strict: bool) -> float:
    try:
        value = float(raw.strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value != value or (value <= minimum if strict else value < minimum):  # NaN or out of range
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be a number {op} {minimum}, got {raw!r}")
    return value


@dataclass(frozen=True)
class JudgeConfig:
    model: str = DEFAULT_JUDGE_MODEL
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)  # never printed
    concurrency: int = 16
    temperature: float = 0.0
    max_tokens: int = 200
    timeout_s: float = 120.0  # per HTTP request
    max_retries: int = 6  # retries after the first try
    cache_dir: str | None = None  # None -> DEFAULT_CACHE_DIR; "" or "off" disables caching
    token_budget: int | None = None  # prompt+completion tokens for uncached calls; None = unlimited

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"JudgeConfig.{what}")

        if not isinstance(self.model, str) or not self.model.strip():
            raise bad("model must be a non-empty string")
        if not isinstance(self.base_url, str) or not self.base_url.strip():
            raise bad("base_url must be a non-empty string")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise bad(f"concurrency must be an integer >= 1, got {self.concurrency!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise bad(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise bad(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        if not isinstance(self.temperature, (int, float)) or not (self.temperature >= 0):
            raise bad(f"temperature must be a number >= 0, got {self.temperature!r}")
        if not isinstance(self.timeout_s, (int, float)) or not (self.timeout_s > 0):
            raise bad(f"timeout_s must be a number > 0, got {self.timeout_s!r}")
        if self.token_budget is not None and (
            isinstance(self.token_budget, bool) or not isinstance(self.token_budget, int) or self.token_budget < 1
        ):
            raise bad(f"token_budget must be None or an integer >= 1, got {self.token_budget!r}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise bad(f"cache_dir must be a path string, got {type(self.cache_dir).__name__}")

    @classmethod
    def from_env(cls, **overrides: Any) -> "JudgeConfig":
        """Build a config from ``SIUO_JUDGE_*`` environment variables.

        Keyword ``overrides`` (field names) win over the environment; overrides
        whose value is ``None`` are ignored, so CLI flags can be passed through.
        Bad values raise ``ValueError`` naming the variable.
        """
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"JudgeConfig.from_env got unknown field(s): {', '.join(unknown)}")

        kw: dict[str, Any] = {}
        if (v := _env("SIUO_JUDGE_MODEL")) is not None:
            kw["model"] = v
        if (v := _env("SIUO_JUDGE_BASE_URL")) is not None:
            kw["base_url"] = v
        key = _env("SIUO_JUDGE_API_KEY") or _env("OPENAI_API_KEY")
        if key is not None:
            kw["api_key"] = key
        if (v := _env("SIUO_JUDGE_CONCURRENCY")) is not None:
            kw["concurrency"] = _parse_int("SIUO_JUDGE_CONCURRENCY", v, 1)
        if (v := os.environ.get("SIUO_JUDGE_CACHE")) is not None:
            kw["cache_dir"] = v.strip()  # "" / "off" disable
        if (v := _env("SIUO_JUDGE_MAX_TOKENS")) is not None:
            kw["max_tokens"] = _parse_int("SIUO_JUDGE_MAX_TOKENS", v, 1)
        if (v := _env("SIUO_JUDGE_TEMPERATURE")) is not None:
            kw["temperature"] = _parse_float("SIUO_JUDGE_TEMPERATURE", v, 0.0, strict=False)
        if (v := _env("SIUO_JUDGE_TOKEN_BUDGET")) is not None:
            if v.lower() in ("none", "unlimited", "off"):
                kw["token_budget"] = None
            else:
                kw["token_budget"] = _parse_int("SIUO_JUDGE_TOKEN_BUDGET", v, 1)
        if (v := _env("SIUO_JUDGE_TIMEOUT")) is not None:
            kw["timeout_s"] = _parse_float("SIUO_JUDGE_TIMEOUT", v, 0.0, strict=True)
        if (v := _env("SIUO_JUDGE_MAX_RETRIES")) is not None:
            kw["max_retries"] = _parse_int("SIUO_JUDGE_MAX_RETRIES", v, 0)

        for name, value in overrides.items():
            if value is not None:
                kw[name] = value
        return cls(**kw)

    @property
    def endpoint_host(self) -> str:
        """``host[:port]`` of ``base_url`` (never any credentials or path)."""
        try:
            parts = urlsplit(self.base_url.strip())
            host = parts.hostname or ""
            port = parts.port
        except ValueError:
            return "<invalid base URL>"
        if not host:
            return "<invalid base URL>"
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"{host}:{port}" if port else host

    def decoding(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    @property
    def resolved_cache_dir(self) -> Path | None:
        """The cache directory actually used, or None when caching is off."""
        if self.cache_dir is None:
            return Path(os.path.expanduser(DEFAULT_CACHE_DIR))
        raw = os.fspath(self.cache_dir).strip()
        if raw == "" or raw.lower() == "off":
            return None
        return Path(os.path.expanduser(raw))


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class JudgeRequest:
    key: str  # caller's id, unique within one run() call
    prompt: str
    image_path: str  # PNG/JPEG attached to the call


@dataclass
class JudgeReply:
    key: str
    text: str | None  # NFKC-normalised judge reply; None when the call failed
    error: str | None  # short reason when text is None
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class JudgeStats:  # cumulative per client
    calls: int = 0  # HTTP requests actually sent (including retries)
    cache_hits: int = 0
    failures: int = 0  # requests that ended with text None
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    budget_exhausted: bool = False
    deduped: int = 0  # requests answered by an identical request in the same run()


# --------------------------------------------------------------------------- helpers


def _sniff_mime(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM":
        return "image/bmp"
    return None


def _mime_with_pil(path: str) -> str:
    try:
        from PIL import Image  # lazy

        with Image.open(path) as im:
            fmt = (im.format or "").upper()
            mime = Image.MIME.get(fmt)
    except Exception:
        mime = None
    return mime or "application/octet-stream"


def _parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
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
    if secs != secs:  # NaN
        return None
    return max(0.0, secs)


def _as_count(value: Any) -> int:
    """A non-negative token count from untrusted JSON (anything else counts as 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value <= 0:
        return 0
    return int(value)


_SEND_CHUNK = 256 * 1024


def _iter_chunks(parts: tuple[bytes, ...]):
    for part in parts:
        if len(part) <= _SEND_CHUNK:
            yield part
            continue
        view = memoryview(part)
        for i in range(0, len(part), _SEND_CHUNK):
            yield bytes(view[i : i + _SEND_CHUNK])


def _with_path(base_url: str, suffix: str) -> str:
    """Append ``suffix`` to the path of ``base_url``, keeping any query (Azure ``api-version``)."""
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/") + "/" + suffix.lstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Fatal(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- client


class JudgeClient:
    """Thread-pooled client for an OpenAI-compatible chat-completions judge."""

    # Tunables (instance attributes may be overridden, e.g. by tests).
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 60.0

    def __init__(self, config: JudgeConfig):
        import httpx  # lazy

        self.config = config
        self.stats = JudgeStats()
        self.cache_dir: Path | None = config.resolved_cache_dir
        self._lock = threading.Lock()
        self._img_lock = threading.Lock()
        self._sha_memo: dict[tuple, str] = {}
        self._img_lru: OrderedDict[tuple, tuple[str, str]] = OrderedDict()
        self._spent_tokens = 0
        self._closed = False
        n = config.concurrency
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s),
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            headers=self._auth_headers(),
            follow_redirects=False,
            trust_env=False,
        )
        self._chat_url = _with_path(config.base_url, "chat/completions")
        self._models_url = _with_path(config.base_url, "models")

    def __repr__(self) -> str:
        c = self.config
        return f"JudgeClient(model={c.model!r}, host={c.endpoint_host!r}, concurrency={c.concurrency})"

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._http.close()

    def __enter__(self) -> "JudgeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ small helpers
    def _auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        if not key:
            return {}
        return {"Authorization": f"Bearer {key}", "api-key": key}

    def _redact(self, text: Any) -> str:
        return redact(text, self.config.api_key)

    def _bump(self, **deltas: int) -> None:
        with self._lock:
            for name, d in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + d)

    # ------------------------------------------------------------------ preflight
    def preflight(self) -> None:
        """Cheap check that the judge can be used: key present, endpoint reachable, key accepted."""
        cfg = self.config
        host = cfg.endpoint_host
        hostname = host.split(":")[0].strip("[]").lower() if host else ""
        if not cfg.api_key and (hostname.endswith("openai.com") or hostname.endswith("azure.com")):
            raise JudgeUnavailable(
                f"SIUO judge: no API key for {host}. Set SIUO_JUDGE_API_KEY or OPENAI_API_KEY, "
                "or point SIUO_JUDGE_BASE_URL at a local OpenAI-compatible server "
                "(e.g. vLLM/SGLang: http://127.0.0.1:8000/v1)."
            )
        import httpx  # lazy

        try:
            resp = self._http.get(self._models_url, timeout=_PREFLIGHT_TIMEOUT_S)
        except httpx.TimeoutException:
            raise JudgeUnavailable(
                f"SIUO judge: endpoint {host} did not answer within {_PREFLIGHT_TIMEOUT_S:g} s. "
                "Check that the server is up, or fix SIUO_JUDGE_BASE_URL."
            ) from None
        except Exception as exc:  # connection errors, bad URL, unsupported scheme, ...
            raise JudgeUnavailable(
                f"SIUO judge: cannot reach endpoint {host} ({type(exc).__name__}: "
                f"{_short(self._redact(exc), 160)}). Check that the server is up, or fix SIUO_JUDGE_BASE_URL."
            ) from None
        if resp.status_code in (401, 403):
            raise JudgeUnavailable(
                f"SIUO judge: {host} rejected the API key (HTTP {resp.status_code}). "
                "Check SIUO_JUDGE_API_KEY / OPENAI_API_KEY."
            )
        # Any other status (200, 404 on servers without /models, ...) means reachable.

    # ------------------------------------------------------------------ images
    def _image_id(self, path: str) -> tuple:
        st = os.stat(path)
        return (os.path.abspath(path), st.st_mtime_ns, st.st_size)

    def _image_sha256(self, path: str) -> str:
        ident = self._image_id(path)
        with self._img_lock:
            sha = self._sha_memo.get(ident)
        if sha is not None:
            return sha
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        sha = h.hexdigest()
        with self._img_lock:
            self._sha_memo[ident] = sha
        return sha

    def _encoded_image(self, path: str) -> tuple[bytes, bytes]:
        """``(data-URL prefix, base64 bytes)`` for ``path``, via a small LRU (encoded lazily)."""
        ident = self._image_id(path)
        with self._img_lock:
            hit = self._img_lru.get(ident)
            if hit is not None:
                self._img_lru.move_to_end(ident)
        if hit is None:
            with open(path, "rb") as fh:
                data = fh.read()
            mime = _sniff_mime(data[:16]) or _mime_with_pil(path)
            hit = (f"data:{mime};base64,".encode("ascii"), base64.b64encode(data))
            del data
            with self._img_lock:
                self._img_lru[ident] = hit
                self._img_lru.move_to_end(ident)
                while len(self._img_lru) > _IMAGE_LRU_SIZE:
                    self._img_lru.popitem(last=False)
        return hit

    # ------------------------------------------------------------------ cache
    def _cache_key(self, prompt: str, image_sha: str) -> str:
        c = self.config
        canon = json.dumps(
            {
                "model": c.model,
                "prompt": prompt,
                "image_sha256": image_sha,
                "temperature": float(c.temperature),
                "max_tokens": int(c.max_tokens),
            },
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    def _cache_path(self, ckey: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / ckey[:2] / f"{ckey}.json"

    def _cache_get(self, ckey: str) -> dict | None:
        path = self._cache_path(ckey)
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as fh:
                entry = json.load(fh)
        except FileNotFoundError:
            return None
        except Exception:
            logger.debug("SIUO judge: unreadable cache entry %s treated as a miss", path.name)
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            return None
        if entry.get("cache_key") not in (None, ckey):
            return None
        return entry

    def _cache_put(self, ckey: str, text: str, usage: dict, response_model: str | None) -> None:
        path = self._cache_path(ckey)
        if path is None:
            return
        c = self.config
        entry = {
            "format": _CACHE_FORMAT,
            "cache_key": ckey,
            "model": c.model,
            "response_model": response_model,
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
            "text": text,
            "usage": usage,
            "created": time.time(),
        }
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{ckey[:16]}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            logger.warning("SIUO judge: could not write cache entry (%s)", _short(self._redact(exc), 160))
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    # ------------------------------------------------------------------ budget
    def _budget_blocked(self) -> bool:
        budget = self.config.token_budget
        if budget is None:
            return False
        with self._lock:
            if self._spent_tokens >= budget:
                self.stats.budget_exhausted = True
                return True
            return False

    def _record_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        budget = self.config.token_budget
        with self._lock:
            self.stats.prompt_tokens += prompt_tokens
            self.stats.completion_tokens += completion_tokens
            self._spent_tokens += prompt_tokens + completion_tokens
            if budget is not None and self._spent_tokens >= budget:
                self.stats.budget_exhausted = True

    # ------------------------------------------------------------------ one call
    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap_s)
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _attempt(self, body_parts: tuple[bytes, ...]) -> tuple[str, dict, str | None]:
        """One HTTP request. Returns (text, usage, model) or raises _Retryable/_Fatal."""
        import httpx  # lazy (already imported by __init__)

        self._bump(calls=1)
        length = sum(len(p) for p in body_parts)
        try:
            # Streamed in slices with an explicit Content-Length (no chunked encoding), so the
            # transport never joins the multi-MB body into yet another copy.
            resp = self._http.post(
                self._chat_url,
                content=_iter_chunks(body_parts),
                headers={"Content-Type": "application/json", "Content-Length": str(length)},
            )
        except httpx.TimeoutException:
            raise _Retryable("timeout") from None
        except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
            raise _Retryable(f"connection error ({type(exc).__name__})") from None

        status = resp.status_code
        if status != 200:
            if status in (408, 409, 429) or status >= 500:
                raise _Retryable(f"HTTP {status}", _parse_retry_after(resp.headers.get("retry-after")))
            detail = _short(self._redact(resp.text), 200)
            raise _Fatal(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")

        try:
            payload = resp.json()
        except Exception:
            raise _Retryable("invalid response (not JSON)") from None
        if not isinstance(payload, dict):
            raise _Retryable("invalid response (not a JSON object)")
        usage_in = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        pt = _as_count(usage_in.get("prompt_tokens"))
        ct = _as_count(usage_in.get("completion_tokens"))
        if pt or ct:
            self._record_usage(pt, ct)
        usage = {"prompt_tokens": pt, "completion_tokens": ct}
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise _Retryable("invalid response (no choices[0].message.content)") from None
        if not isinstance(content, str):
            raise _Retryable("invalid response (message content is not a string)")
        model = payload.get("model") if isinstance(payload.get("model"), str) else None
        return content, usage, model

    def _call(self, req: JudgeRequest, ckey: str) -> JudgeReply:
        """Worker: send one request (with retries) and cache a success."""
        if self._budget_blocked():
            return JudgeReply(req.key, None, BUDGET_ERROR, cached=False)
        cfg = self.config
        try:
            url_prefix, b64 = self._encoded_image(req.image_path)
        except OSError as exc:
            return JudgeReply(req.key, None, f"image unreadable: {type(exc).__name__}", cached=False)
        # Serialise everything but the image, then splice the base64 bytes in: one copy of the
        # (multi-MB) image per in-flight call instead of several intermediate strings.
        placeholder = f"@@siuo-image-{uuid.uuid4().hex}@@"
        body = {
            "model": cfg.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": req.prompt},
                        {"type": "image_url", "image_url": {"url": placeholder}},
                    ],
                }
            ],
            "temperature": cfg.temperature,
            "max_tokens": cfg.max_tokens,
        }
        head, tail = json.dumps(body, ensure_ascii=False).encode("utf-8").split(placeholder.encode("ascii"), 1)
        body_parts = (head, url_prefix, b64, tail)  # b64 is shared with the LRU: no copy
        del body, head, tail, b64

        total_pt = total_ct = 0
        last_reason = "unknown error"
        for attempt in range(cfg.max_retries + 1):
            try:
                content, usage, model = self._attempt(body_parts)
            except _Fatal as exc:
                return JudgeReply(req.key, None, self._redact(exc.reason), False, total_pt, total_ct)
            except _Retryable as exc:
                last_reason = exc.reason
                if attempt >= cfg.max_retries:
                    break
                delay = self._backoff(attempt, exc.retry_after)
                self._bump(retries=1)
                logger.info(
                    "SIUO judge: %s, retry %d/%d in %.1f s",
                    self._redact(exc.reason), attempt + 1, cfg.max_retries, delay,
                )
                time.sleep(delay)
                continue
            except Exception as exc:  # unexpected: never let it kill the whole run
                return JudgeReply(
                    req.key, None, _short(self._redact(f"{type(exc).__name__}: {exc}"), 200),
                    False, total_pt, total_ct,
                )
            total_pt += usage["prompt_tokens"]
            total_ct += usage["completion_tokens"]
            text = redact_secret_only(unicodedata.normalize("NFKC", content), cfg.api_key)
            self._cache_put(ckey, text, usage, model)
            return JudgeReply(req.key, text, None, False, total_pt, total_ct)
        return JudgeReply(
            req.key, None, self._redact(f"retries exhausted: {last_reason}"), False, total_pt, total_ct
        )

    # ------------------------------------------------------------------ run
    def run(
        self,
        requests: Iterable[JudgeRequest],
        progress: bool = True,
        desc: str = "SIUO judge",
    ) -> dict[str, JudgeReply]:
        """Judge every request; returns ``{request.key: JudgeReply}`` (one per request)."""
        if self._closed:
            raise RuntimeError("JudgeClient is closed")
        requests = list(requests)
        seen: set[str] = set()
        for r in requests:
            if r.key in seen:
                raise ValueError("JudgeClient.run: duplicate request key in one run()")
            seen.add(r.key)
        if not requests:
            return {}

        from tqdm.auto import tqdm  # lazy

        replies: dict[str, JudgeReply] = {}
        groups: "OrderedDict[str, list[JudgeRequest]]" = OrderedDict()
        bar = tqdm(total=len(requests), desc=desc, disable=not progress, file=sys.stderr, dynamic_ncols=True)

        def refresh() -> None:
            if progress:
                with self._lock:
                    s = self.stats
                    bar.set_postfix(sent=s.calls, cached=s.cache_hits, errors=s.failures, refresh=False)

        def finish(reply: JudgeReply, n: int = 1) -> None:
            replies[reply.key] = reply
            if reply.text is None:
                self._bump(failures=1)
            bar.update(n)

        try:
            # 1) hash images, look up the cache, group identical requests
            for r in requests:
                try:
                    sha = self._image_sha256(r.image_path)
                except OSError as exc:
                    finish(JudgeReply(r.key, None, f"image unreadable: {type(exc).__name__}", cached=False))
                    continue
                ckey = self._cache_key(r.prompt, sha)
                if ckey in groups:
                    groups[ckey].append(r)
                    continue
                entry = self._cache_get(ckey)
                if entry is not None:
                    usage = entry.get("usage") if isinstance(entry.get("usage"), dict) else {}
                    self._bump(cache_hits=1)
                    groups[ckey] = [r]
                    replies_for_hit = JudgeReply(
                        r.key, entry["text"], None, cached=True,
                        prompt_tokens=_as_count(usage.get("prompt_tokens")),
                        completion_tokens=_as_count(usage.get("completion_tokens")),
                    )
                    finish(replies_for_hit)
                    continue
                groups[ckey] = [r]
            # duplicates of cache hits: answer from the hit right away
            pending: list[tuple[str, JudgeRequest]] = []
            for ckey, members in groups.items():
                head = members[0]
                if head.key in replies:
                    for dup in members[1:]:
                        self._bump(deduped=1)
                        finish(replace(replies[head.key], key=dup.key))
                else:
                    pending.append((ckey, head))
            refresh()

            # 2) send the misses with bounded concurrency
            if pending:
                workers = min(self.config.concurrency, len(pending))
                pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="siuo-judge")
                try:
                    futures = {pool.submit(self._call, head, ckey): ckey for ckey, head in pending}
                    for fut in cf.as_completed(futures):
                        ckey = futures[fut]
                        reply = fut.result()
                        finish(reply)
                        for dup in groups[ckey][1:]:
                            self._bump(deduped=1)
                            finish(replace(reply, key=dup.key))
                        refresh()
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                else:
                    pool.shutdown(wait=True)
            refresh()
        finally:
            bar.close()

        if self.stats.budget_exhausted:
            n_budget = sum(1 for r in replies.values() if r.error == BUDGET_ERROR)
            if n_budget:
                logger.warning(
                    "SIUO judge: token budget (%s) reached; %d request(s) not judged",
                    self.config.token_budget, n_budget,
                )
        return {r.key: replies[r.key] for r in requests}


def redact_secret_only(text: str, *secrets: str | None) -> str:
    """Replace literal secrets (>= 8 chars) only; used on judge reply text, which must stay intact otherwise."""
    for secret in secrets:
        if secret and len(secret) >= 8 and secret in text:
            text = text.replace(secret, "***")
    return text
