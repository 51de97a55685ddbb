"""LLM-judge client for SIUO: any OpenAI-compatible chat-completions endpoint.

Synchronous API, bounded concurrency (``concurrency`` worker threads over a small pool of
keep-alive ``http.client`` connections), an on-disk cache (atomic writes, so a killed run
leaves no half-written entry; image hashes kept in an index beside it), retries with
backoff, an optional token budget and a cheap preflight check.

Transport: plain HTTP/1.1 from the standard library, one connection per in-flight request,
reused across requests; a connection the server dropped while idle is reopened and the
request sent again once. HTTPS verifies certificates (certifi's CA bundle where installed,
else the system's). Proxy variables (``HTTPS_PROXY``, ...) are not honoured and redirects
are not followed: point ``SIUO_JUDGE_BASE_URL`` at the endpoint itself.

Nothing here touches the network or does heavy work at import time; ``http.client``,
``tqdm`` and ``PIL`` are imported lazily where needed.

The API key is never written to exceptions, logs, reprs, cache files or replies:
error text that might echo request data goes through :func:`redact`.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import itertools
import json
import logging
import os
import queue
import random
import re
import sys
import threading
import time
import unicodedata
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

from . import __version__

if TYPE_CHECKING:  # imported lazily at run time
    import http.client
    import ssl

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
_SHA_INDEX_NAME = "image_sha256.index"
_SHA_INDEX_FORMAT = 1
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_JSON_CONTENT = {"Content-Type": "application/json"}
_USER_AGENT = f"siuo-task/{__version__}"
_PROGRESS_INTERVAL_S = 0.1


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


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _request_target(url: str) -> str:
    """The path and query of ``url``, as sent in the request line."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


_tmp_names = itertools.count()


def _write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    Readers see the old file or the new one, never part of one. No fsync: a file lost in a crash
    is a cache miss, not a wrong answer. The folder is made when missing.
    """
    folder, name = os.path.split(path)
    # Unique per process, thread and write; O_EXCL guards against leftovers of a killed process.
    tmp = os.path.join(folder, f".{name[:16]}.{os.getpid()}-{threading.get_ident()}-{next(_tmp_names)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, flags, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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


# --------------------------------------------------------------------------- HTTP transport

_SMALL_BODY = 64 * 1024  # bodies up to this size go out in one piece


def _ssl_context() -> ssl.SSLContext:
    """Certificate-verifying TLS context: certifi's CA bundle when installed, else the system's."""
    import ssl  # lazy

    try:
        import certifi  # comes with httpx; optional here
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class _TransportError(Exception):
    """A request got no complete HTTP response; ``timed_out`` tells a socket timeout apart."""

    def __init__(self, cause: BaseException, timed_out: bool = False):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.timed_out = timed_out


@dataclass
class _Response:
    status: int
    headers: Any  # http.client.HTTPMessage: case-insensitive .get()
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """Undo a gzip/deflate ``Content-Encoding`` (we ask for identity; some servers compress anyway).

    A body that does not decode is returned as it came (and then fails as "not JSON").
    """
    encoding = (encoding or "").strip().lower()
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
    if wbits is None or not body:
        return body
    try:
        return zlib.decompress(body, wbits)
    except zlib.error:
        if encoding == "deflate":  # some servers send raw deflate without the zlib header
            try:
                return zlib.decompress(body, -zlib.MAX_WBITS)
            except zlib.error:
                pass
        return body


class _KeepAliveHttp:
    """Keep-alive HTTP/1.1 connections (stdlib ``http.client``) to the one judge endpoint.

    Each request takes an idle connection from a small stack (or makes a new one) and puts it
    back once the reply is read, so there are never more connections than requests that ran at
    once. A connection the server dropped while it sat idle is reopened and the request sent
    again, once, at once; any other failure is a :class:`_TransportError` for the caller's
    retry policy. Bodies are sent as given, in parts, with an explicit ``Content-Length``.
    HTTPS verifies certificates (certifi's CA bundle where installed). Proxies
    (``HTTPS_PROXY``...) are not used and redirects are not followed.
    """

    def __init__(self, base_url: str, headers: dict[str, str], timeout_s: float):
        import http.client  # lazy
        import ssl

        self._client = http.client
        # Errors that mean "the server closed this keep-alive connection while it sat idle".
        self._dropped = (
            http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
            ssl.SSLEOFError, ssl.SSLZeroReturnError,  # the same over TLS
        )
        self._timeout = timeout_s
        self._headers = dict(headers)
        self._url_error: str | None = None
        self._https = False
        self._host: str | None = None
        self._port: int | None = None
        try:
            parts = urlsplit(base_url.strip())
            self._port = parts.port
            self._host = parts.hostname
            scheme = parts.scheme.lower()
        except ValueError as exc:
            self._url_error = f"invalid base URL ({exc})"
        else:
            if scheme not in ("http", "https"):
                self._url_error = f"unsupported URL scheme {scheme!r} in the base URL (use http or https)"
            elif not self._host:
                self._url_error = "the base URL has no host"
            self._https = scheme == "https"
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._idle: list = []  # idle http.client connections, most recently used last
        self._all: list = []
        self._closed = False

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._url_error is not None:
            raise ValueError(self._url_error)
        if not self._https:
            return self._client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        with self._lock:
            if self._ssl is None:
                self._ssl = _ssl_context()
            context = self._ssl
        return self._client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=context)

    def _acquire(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._closed:
                raise RuntimeError("the judge client is closed")
            if self._idle:
                return self._idle.pop()
        conn = self._new_connection()  # connects on first use
        with self._lock:
            self._all.append(conn)
        return conn

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._all, self._idle = self._all, [], []
        for conn in conns:
            conn.close()

    def request(self, method: str, target: str, body_parts: tuple[bytes, ...] = (),
                headers: dict[str, str] | None = None, timeout: float | None = None) -> _Response:
        """Send one request to ``target`` (path and query) and read the whole reply."""
        timeout = self._timeout if timeout is None else timeout
        conn = self._acquire()
        try:
            may_resend = conn.sock is not None  # an open, reused connection
            while True:
                try:
                    return self._exchange(conn, method, target, body_parts, headers, timeout)
                except self._dropped as exc:
                    conn.close()
                    if not may_resend:
                        raise _TransportError(exc) from None
                    may_resend = False  # dropped while idle: reconnect and send again, once
                except TimeoutError as exc:  # socket.timeout
                    conn.close()
                    raise _TransportError(exc, timed_out=True) from None
                except (OSError, self._client.HTTPException) as exc:
                    conn.close()
                    raise _TransportError(exc) from None
                except BaseException:
                    conn.close()  # state unknown: never reuse it half-way through a request
                    raise
        finally:
            self._release(conn)

    def _exchange(self, conn: http.client.HTTPConnection, method: str, target: str,
                  body_parts: tuple[bytes, ...], headers: dict[str, str] | None, timeout: float) -> _Response:
        if conn.timeout != timeout:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        length = sum(len(part) for part in body_parts)
        conn.putrequest(method, target)  # Host, Accept-Encoding: identity
        try:
            for name, value in self._headers.items():
                conn.putheader(name, value)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if body_parts or method not in ("GET", "HEAD"):
                conn.putheader("Content-Length", str(length))
        except ValueError:  # http.client's message would quote the value (the API key)
            raise ValueError("a request header holds a character HTTP does not allow (check the API key)") from None
        if length <= _SMALL_BODY:
            conn.endheaders(b"".join(body_parts) if length else None)
        else:
            conn.endheaders()
            for part in body_parts:  # the multi-MB image part goes out without another copy
                conn.sock.sendall(part)
        resp = conn.getresponse()
        body = resp.read()
        return _Response(resp.status, resp.msg, _decoded(body, resp.msg.get("Content-Encoding")))


# --------------------------------------------------------------------------- client


class JudgeClient:
    """Thread-pooled client for an OpenAI-compatible chat-completions judge."""

    # Tunables (instance attributes may be overridden, e.g. by tests).
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 60.0

    def __init__(self, config: JudgeConfig):
        self.config = config
        self.stats = JudgeStats()
        self.cache_dir: Path | None = config.resolved_cache_dir
        self._cache_root: str | None = None if self.cache_dir is None else os.fspath(self.cache_dir)
        self._lock = threading.Lock()
        self._img_lock = threading.Lock()
        self._sha_memo: dict[tuple, str] = {}
        self._sha_index_loaded = False
        self._sha_unsaved: dict[str, list] = {}  # path -> [size, mtime_ns, ctime_ns, sha256] not yet in the index file
        self._img_lru: OrderedDict[tuple, tuple[bytes, bytes]] = OrderedDict()
        self._spent_tokens = 0
        self._closed = False
        headers = {"User-Agent": _USER_AGENT, "Accept": "application/json", **self._auth_headers()}
        self._http = _KeepAliveHttp(config.base_url, headers, config.timeout_s)
        self._chat_url = _with_path(config.base_url, "chat/completions")
        self._models_url = _with_path(config.base_url, "models")
        self._chat_target = _request_target(self._chat_url)
        self._models_target = _request_target(self._models_url)

    def __repr__(self) -> str:
        c = self.config
        return f"JudgeClient(model={c.model!r}, host={c.endpoint_host!r}, concurrency={c.concurrency})"

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._http.close()
            self._save_sha_index()

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
        try:
            resp = self._http.request("GET", self._models_target, timeout=_PREFLIGHT_TIMEOUT_S)
        except Exception as exc:  # connection errors, bad URL, unsupported scheme, ...
            if isinstance(exc, _TransportError) and exc.timed_out:
                raise JudgeUnavailable(
                    f"SIUO judge: endpoint {host} did not answer within {_PREFLIGHT_TIMEOUT_S:g} s. "
                    "Check that the server is up, or fix SIUO_JUDGE_BASE_URL."
                ) from None
            cause = exc.cause if isinstance(exc, _TransportError) else exc
            raise JudgeUnavailable(
                f"SIUO judge: cannot reach endpoint {host} ({type(cause).__name__}: "
                f"{_short(self._redact(cause), 160)}). Check that the server is up, or fix SIUO_JUDGE_BASE_URL."
            ) from None
        if resp.status in (401, 403):
            raise JudgeUnavailable(
                f"SIUO judge: {host} rejected the API key (HTTP {resp.status}). "
                "Check SIUO_JUDGE_API_KEY / OPENAI_API_KEY."
            )
        # Any other status (200, 404 on servers without /models, ...) means reachable.

    # ------------------------------------------------------------------ images
    def _image_id(self, path: str) -> tuple:
        """``(absolute path, size, mtime_ns, ctime_ns)``: changes whenever the file's content can have changed."""
        st = os.stat(path)
        return (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _image_sha256(self, path: str) -> str:
        ident = self._image_id(path)
        with self._img_lock:
            if not self._sha_index_loaded:
                self._sha_index_loaded = True
                for image, (size, mtime_ns, ctime_ns, sha) in self._read_sha_index().items():
                    self._sha_memo.setdefault((image, size, mtime_ns, ctime_ns), sha)
            sha = self._sha_memo.get(ident)
        if sha is not None:
            return sha
        sha = _file_sha256(path)
        with self._img_lock:
            self._sha_memo[ident] = sha
            if self._cache_root is not None:
                self._sha_unsaved[ident[0]] = [*ident[1:], sha]
        return sha

    # The image hash index, ``<cache dir>/image_sha256.index`` (JSON):
    # {"format": 1, "images": {absolute path: [size, mtime_ns, ctime_ns, sha256 hex]}}.
    # It spares every new client from hashing every image again; an entry counts only while the
    # file's size and times are unchanged, and an unreadable index is ignored (images are hashed).
    def _sha_index_path(self) -> str | None:
        return None if self._cache_root is None else os.path.join(self._cache_root, _SHA_INDEX_NAME)

    def _read_sha_index(self) -> dict[str, list]:
        path = self._sha_index_path()
        if path is None:
            return {}
        try:
            with open(path, "rb") as fh:
                data = json.loads(fh.read())
            images = data["images"] if data.get("format") == _SHA_INDEX_FORMAT else {}
        except FileNotFoundError:
            return {}
        except Exception:
            logger.debug("SIUO judge: unreadable image hash index %s ignored", path)
            return {}
        if not isinstance(images, dict):
            return {}
        good = {}
        for image, entry in images.items():
            if (
                isinstance(entry, list) and len(entry) == 4
                and all(isinstance(v, int) and not isinstance(v, bool) for v in entry[:3])
                and isinstance(entry[3], str) and _SHA256_RE.fullmatch(entry[3])
            ):
                good[image] = entry
        return good

    def _save_sha_index(self) -> None:
        """Merge the hashes computed by this client into the index file (atomic replace; never raises)."""
        with self._img_lock:
            if not self._sha_unsaved:
                return
            new, self._sha_unsaved = self._sha_unsaved, {}
        path = self._sha_index_path()
        if path is None:
            return
        images = self._read_sha_index()  # another process may have added entries meanwhile
        images.update(new)
        data = json.dumps({"format": _SHA_INDEX_FORMAT, "images": images}, ensure_ascii=False).encode("utf-8")
        try:
            _write_atomic(path, data)
        except OSError as exc:
            logger.debug("SIUO judge: could not write the image hash index (%s)", _short(self._redact(exc), 160))

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

    def _cache_path(self, ckey: str) -> str | None:
        if self._cache_root is None:
            return None
        return os.path.join(self._cache_root, ckey[:2], ckey + ".json")

    def _cache_get(self, ckey: str) -> dict | None:
        path = self._cache_path(ckey)
        if path is None:
            return None
        try:
            with open(path, "rb") as fh:
                entry = json.loads(fh.read())  # UTF-8 bytes: no text layer
        except FileNotFoundError:
            return None
        except Exception:
            logger.debug("SIUO judge: unreadable cache entry %s treated as a miss", os.path.basename(path))
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
        try:
            _write_atomic(path, json.dumps(entry, ensure_ascii=False).encode("utf-8"))
        except OSError as exc:
            logger.warning("SIUO judge: could not write cache entry (%s)", _short(self._redact(exc), 160))

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
        self._bump(calls=1)
        try:
            # The parts go out as they are, behind an explicit Content-Length (no chunked
            # encoding): the multi-MB image part is never joined into yet another copy.
            resp = self._http.request("POST", self._chat_target, body_parts, _JSON_CONTENT)
        except _TransportError as exc:
            if exc.timed_out:
                raise _Retryable("timeout") from None
            raise _Retryable(f"connection error ({type(exc.cause).__name__})") from None

        status = resp.status
        if status != 200:
            if status in (408, 409, 429) or status >= 500:
                raise _Retryable(f"HTTP {status}", _parse_retry_after(resp.headers.get("retry-after")))
            detail = _short(self._redact(resp.text()), 200)
            raise _Fatal(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")

        try:
            payload = json.loads(resp.body)
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

    def _call(self, req: JudgeRequest) -> tuple[JudgeReply, tuple | None]:
        """Worker: send one request (with retries).

        Returns the reply and, for a success, ``(text, usage, response model)`` for the cache:
        :meth:`run` writes the entry, so the workers go straight on to their next request.
        """
        if self._budget_blocked():
            return JudgeReply(req.key, None, BUDGET_ERROR, cached=False), None
        cfg = self.config
        try:
            url_prefix, b64 = self._encoded_image(req.image_path)
        except OSError as exc:
            return JudgeReply(req.key, None, f"image unreadable: {type(exc).__name__}", cached=False), None
        # Serialise everything but the image, then splice the base64 bytes in: one copy of the
        # (multi-MB) image per in-flight call instead of several intermediate strings.
        placeholder = f"@@siuo-image-{os.urandom(16).hex()}@@"
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
                return JudgeReply(req.key, None, self._redact(exc.reason), False, total_pt, total_ct), None
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
                reason = _short(self._redact(f"{type(exc).__name__}: {exc}"), 200)
                return JudgeReply(req.key, None, reason, False, total_pt, total_ct), None
            total_pt += usage["prompt_tokens"]
            total_ct += usage["completion_tokens"]
            text = redact_secret_only(unicodedata.normalize("NFKC", content), cfg.api_key)
            return JudgeReply(req.key, text, None, False, total_pt, total_ct), (text, usage, model)
        reason = self._redact(f"retries exhausted: {last_reason}")
        return JudgeReply(req.key, None, reason, False, total_pt, total_ct), None

    # ------------------------------------------------------------------ run
    def _send_all(self, pending: list[tuple[str, JudgeRequest]]) -> Iterator[tuple[str, JudgeReply, tuple | None]]:
        """Yield ``(cache key, reply, what to cache)`` for every pending request, as replies arrive.

        ``concurrency`` worker threads take the requests one by one and hand the replies back
        through a queue (no per-request futures). If the consumer stops early (an exception, ^C),
        the workers take no new request; calls in flight end on their own (daemon threads).
        """
        if not pending:
            return
        todo = iter(pending)
        todo_lock = threading.Lock()
        done: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                with todo_lock:
                    item = next(todo, None)
                if item is None:
                    return
                ckey, head = item
                try:
                    done.put((ckey, *self._call(head), None))
                except BaseException as exc:  # _call turns expected failures into replies: this is a bug
                    done.put((ckey, None, None, exc))

        n = min(self.config.concurrency, len(pending))
        workers = [threading.Thread(target=work, name=f"siuo-judge-{i}", daemon=True) for i in range(n)]
        for thread in workers:
            thread.start()
        try:
            for _ in range(len(pending)):
                ckey, reply, to_cache, error = done.get()
                if error is not None:
                    raise error
                yield ckey, reply, to_cache
        finally:
            stop.set()
        for thread in workers:
            thread.join()

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

        replies: dict[str, JudgeReply] = {}
        groups: "OrderedDict[str, list[JudgeRequest]]" = OrderedDict()
        bar = None
        if progress:
            from tqdm.auto import tqdm  # lazy, and not at all without a progress bar

            bar = tqdm(total=len(requests), desc=desc, file=sys.stderr, dynamic_ncols=True)

        last_refresh = [0.0]

        def refresh(force: bool = False) -> None:
            # The counters change on every reply; formatting them that often costs more than a call.
            now = time.monotonic()
            if bar is not None and (force or now - last_refresh[0] >= _PROGRESS_INTERVAL_S):
                last_refresh[0] = now
                with self._lock:
                    s = self.stats
                    bar.set_postfix(sent=s.calls, cached=s.cache_hits, errors=s.failures, refresh=False)

        def finish(reply: JudgeReply, n: int = 1) -> None:
            replies[reply.key] = reply
            if reply.text is None:
                self._bump(failures=1)
            if bar is not None:
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
            self._save_sha_index()  # now, so that a run killed while judging keeps its hashes
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
            with contextlib.closing(self._send_all(pending)) as arrivals:
                for ckey, reply, to_cache in arrivals:
                    if to_cache is not None:
                        self._cache_put(ckey, *to_cache)  # here, off the workers' path
                    finish(reply)
                    for dup in groups[ckey][1:]:
                        self._bump(deduped=1)
                        finish(replace(reply, key=dup.key))
                    refresh()
            refresh(force=True)
        finally:
            if bar is not None:
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
