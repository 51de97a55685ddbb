"""The judge client: the openai SDK (``AsyncOpenAI``, ``AsyncAzureOpenAI`` for Azure) on one event-loop
thread, bounded concurrency, our own bounded retry policy, a whole-request deadline, the token budget,
the disk cache, dedupe within a run and a preflight that makes one real minimal judge call.

The SDK's httpx honours ``HTTP(S)_PROXY``/``NO_PROXY``/``SSL_CERT_FILE`` (``trust_env``) and follows
redirects. The API key is never written to exceptions, logs, reprs, cache files or replies.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import email.utils
import io
import logging
import math
import queue
import random
import sys
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from siuo_task import __version__
from .cache import ImageHashes, ReplyCache, as_count, cache_key
from .config import DEFAULT_AZURE_API_VERSION, JudgeConfig, is_azure, is_openai_api, redact

logger = logging.getLogger("siuo_task.judge")

BUDGET_ERROR = "token budget reached"
DRY_RUN_FINGERPRINT = "siuo-dry-run"  # the dry-run judge marks its replies with this system_fingerprint
_IMAGE_LRU_SIZE = 8
_SHARD_SIZE = 4  # workers per SDK client
_PREFLIGHT_RETRIES = 1  # the check call fails fast: an unreachable endpoint is named within seconds
_MAX_ERROR_CHARS = 300
_PROGRESS_INTERVAL_S = 0.1
_REFUSALS_BEFORE_FATAL = 10  # client errors in a row, with no success yet, that stop judging
_UNSUPPORTED_MARKERS = ("unsupported parameter", "unsupported value", "unsupported_parameter", "unsupported_value",
                        "unrecognized request argument", "not supported with this model")
PREFLIGHT_PROMPT = "This is a connection check of an image-grading judge. Reply with the single word OK."
_USER_AGENT = f"siuo-task/{__version__}"


class JudgeUnavailable(RuntimeError):
    """The judge endpoint cannot be used (missing key, unreachable, key rejected, ...)."""


class JudgeFatal(JudgeUnavailable):
    """Judging stopped at once: every further call would fail the same way (key rejected, model not
    found, a request shape the endpoint refuses). The message names the cause and the endpoint."""


@dataclass(frozen=True)
class JudgeRequest:
    key: str  # caller's id, unique within one run() call
    prompt: str
    image_path: str  # image attached to the call as it is (bytes and real MIME type)


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
    calls: int = 0  # judge requests actually sent (retries included, the preflight not)
    cache_hits: int = 0
    failures: int = 0  # requests that ended with text None
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    budget_exhausted: bool = False
    deduped: int = 0  # requests answered by an identical request in the same run()
    waited_s: float = 0.0  # total time calls spent waiting (backoff and Retry-After)
    preflight_calls: int = 0
    dry_run_replies: int = 0  # replies marked by the dry-run judge


def _short(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
            mime = Image.MIME.get((im.format or "").upper())
    except Exception:
        mime = None
    return mime or "application/octet-stream"


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


def _error_detail(exc: Any) -> tuple[str, str]:
    """``(message, code)`` of an API error body, whatever its form."""
    body = getattr(exc, "body", None)
    message, code = "", ""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            code = str(err.get("code") or err.get("type") or "")
        else:
            message = str(err)
    elif body is not None:
        message = str(body)
    if not message:
        message = str(getattr(exc, "message", "") or "")
    return message, code


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _ItemError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Loop:
    """One asyncio event loop on a daemon thread: every SDK call of a client runs there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="siuo-judge-loop", daemon=True)
        self.thread.start()

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


def _tiny_png() -> bytes:
    from PIL import Image  # lazy

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 200, 200)).save(buf, format="PNG")
    return buf.getvalue()


class JudgeClient:
    """Judge client for an OpenAI-compatible chat-completions endpoint (OpenAI, Azure, vLLM, SGLang, ...)."""

    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    # True: run() makes the preflight check call before its first uncached call (``siuo score gen``:
    # a warm cache needs no judge at all, a cold one fails on its first call, not its 300th).
    preflight_first: bool = False

    def __init__(self, config: JudgeConfig):
        self.config = config
        self.stats = JudgeStats()
        self.cache_dir = config.resolved_cache_dir
        root = None if self.cache_dir is None else str(self.cache_dir)
        self._cache = ReplyCache(root)
        self._hashes = ImageHashes(root)
        self.shape = config.initial_shape()
        self.shape_switched_from: str | None = None
        self.shape_switch_reason: str | None = None
        self._lock = threading.Lock()
        self._img_lock = threading.Lock()
        self._img_lru: OrderedDict[tuple, str] = OrderedDict()
        self._spent_tokens = 0
        self._successes = 0
        self._refusals = 0
        self._gate = 0.0  # monotonic time before which no call starts (a Retry-After)
        self._pace = 0.0  # seconds between call starts while rate-limited (see _pass_gate)
        self._paced_at = 0.0
        self._wait_until = 0.0
        self._wait_reason = ""
        self._fatal: JudgeFatal | None = None
        self._loop: _Loop | None = None
        self._sdk = None
        self._shards: list = []
        self._extra_headers: dict = {}
        self._closed = False
        self._preflighted = False

    def __repr__(self) -> str:
        c = self.config
        return f"JudgeClient(model={c.model!r}, host={c.endpoint_host!r}, concurrency={c.concurrency})"

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            for sdk in self._shards:
                try:
                    self._loop.submit(sdk.close()).result(timeout=10)
                except Exception:
                    pass
            self._loop.close()
        self._hashes.save()

    def __enter__(self) -> "JudgeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: Any) -> str:
        return redact(text, self.config.api_key)

    def _bump(self, **deltas: Any) -> None:
        with self._lock:
            for name, d in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + d)

    def _where(self) -> str:
        return f"{self.config.endpoint_host} (model {self.config.model})"

    # ------------------------------------------------------------------ SDK client
    def _check_url(self) -> None:
        try:
            parts = urlsplit(self.config.base_url.strip())
            scheme, host = parts.scheme.lower(), parts.hostname
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise JudgeUnavailable(f"SIUO judge: invalid base URL ({exc}); fix SIUO_JUDGE_BASE_URL") from None
        if scheme not in ("http", "https"):
            raise JudgeUnavailable(f"SIUO judge: unsupported URL scheme {scheme!r} in the base URL (use http or https); fix SIUO_JUDGE_BASE_URL")
        if not host:
            raise JudgeUnavailable("SIUO judge: the base URL has no host; fix SIUO_JUDGE_BASE_URL")

    def _make_sdk(self):
        """The SDK client for the configured endpoint, with the key in the one header its API expects."""
        import openai  # lazy: importing the SDK takes a while

        omit = getattr(openai, "Omit", None)
        if omit is None:  # exported from 2.x on; 1.x keeps it in _types
            from openai._types import Omit as omit
        cfg = self.config
        key = cfg.api_key
        base = cfg.base_url.strip()
        # max_retries=0: the retries are ours (see _send): Retry-After capped and bounded in total per
        # call, the waits shown in the progress bar and the log, fatal errors told apart. The SDK's own
        # retries would wait silently (up to 60 s a time) and count nowhere.
        common: dict = {"max_retries": 0, "timeout": cfg.timeout_s}
        headers: dict = {"User-Agent": _USER_AGENT}
        if not is_openai_api(base):
            # Organisation/project ids from OPENAI_ORG_ID/OPENAI_PROJECT_ID belong to OpenAI only.
            headers["OpenAI-Organization"] = omit()
            headers["OpenAI-Project"] = omit()
        parts = urlsplit(base)
        if is_azure(base) and "/deployments" in parts.path or (is_azure(base) and parts.path.rstrip("/").endswith("/openai")):
            if not key:
                raise JudgeUnavailable(f"SIUO judge: no API key for {cfg.endpoint_host}. Set SIUO_JUDGE_API_KEY.")
            query = dict(parse_qsl(parts.query))
            version = query.pop("api-version", None) or cfg.azure_api_version or DEFAULT_AZURE_API_VERSION
            plain = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
            headers["Authorization"] = omit()
            self._extra_headers = {k: v for k, v in headers.items() if isinstance(v, omit)}
            return openai.AsyncAzureOpenAI(api_key=key, base_url=plain, api_version=version,
                                           default_headers=headers, **common)
        if is_azure(base):  # Azure's OpenAI-style v1 API: api-key header, no Authorization
            if key:
                headers["api-key"] = key
            headers["Authorization"] = omit()
        elif not key:
            headers["Authorization"] = omit()  # a local server without a key gets no auth header
        # The SDK falls back to OPENAI_API_KEY when api_key is None: always pass one explicitly.
        # Without a key the value is a placeholder whose header is omitted above.
        sdk_key = key if (key and not is_azure(base)) else "no-key"
        self._extra_headers = {k: v for k, v in headers.items() if isinstance(v, omit)}
        return openai.AsyncOpenAI(api_key=sdk_key, base_url=base, default_headers=headers, **common)

    def _ensure_started(self) -> None:
        if self._closed:
            raise RuntimeError("JudgeClient is closed")
        if self._sdk is None:
            self._check_url()
            # One SDK client (and connection pool) per _SHARD_SIZE workers: httpcore scans every pooled
            # connection on each request, which at concurrency 32 cost more CPU than the call itself.
            n = max(1, math.ceil(self.config.concurrency / _SHARD_SIZE))
            self._shards = [self._make_sdk() for _ in range(n)]
            if self._loop is None:
                self._loop = _Loop()
            self._sdk = self._shards[0]

    # ------------------------------------------------------------------ images
    def _cached_data_url(self, path: str) -> str | None:
        ident = ImageHashes.ident(path)
        with self._img_lock:
            hit = self._img_lru.get(ident)
            if hit is not None:
                self._img_lru.move_to_end(ident)
            return hit

    def _data_url(self, path: str) -> str:
        """``data:<mime>;base64,...`` of the file's own bytes, via a small LRU."""
        hit = self._cached_data_url(path)
        if hit is not None:
            return hit
        ident = ImageHashes.ident(path)
        with open(path, "rb") as fh:
            data = fh.read()
        mime = _sniff_mime(data[:16]) or _mime_with_pil(path)
        url = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
        del data
        with self._img_lock:
            self._img_lru[ident] = url
            while len(self._img_lru) > _IMAGE_LRU_SIZE:
                self._img_lru.popitem(last=False)
        return url

    @staticmethod
    def _messages(prompt: str, data_url: str) -> list:
        return [{"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": data_url}},
        ]}]

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

    # ------------------------------------------------------------------ one request
    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _fatal_error(self, message: str) -> JudgeFatal:
        exc = JudgeFatal(self._redact(message))
        if self._fatal is None:
            self._fatal = exc
        return self._fatal

    def _switch_shape(self, used: str, detail: str) -> None:
        """The endpoint refused a parameter of shape ``used``: switch to the other shape, once."""
        with self._lock:
            if self.shape != used:
                return  # another call switched already
            if self.shape_switched_from is None:
                new = "chat" if used == "reasoning" else "reasoning"
                self.shape_switched_from, self.shape, self.shape_switch_reason = used, new, _short(detail, 200)
                logger.warning("SIUO judge: %s refused the %r request shape (%s); switching to %r",
                               self._where(), used, _short(detail, 160), new)
                return
        raise self._fatal_error(
            f"SIUO judge: {self._where()} refuses both request shapes (chat: max_tokens + temperature; "
            f"reasoning: max_completion_tokens): {_short(detail, 200)}. Set SIUO_JUDGE_REQUEST_SHAPE or check the model."
        )

    def _classify(self, exc: BaseException, shape: str) -> None:
        """Turn an SDK exception into _Retry / _ItemError / JudgeFatal, or switch the request shape (returns)."""
        import openai

        cfg = self.config
        if isinstance(exc, asyncio.TimeoutError):
            raise _Retry(f"timeout: no complete reply within {cfg.timeout_s:g} s (SIUO_JUDGE_TIMEOUT)")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message, code = _error_detail(exc)
            detail = _short(self._redact(message or code), 200)
            if status in (401, 403):
                hint = {None: "Set SIUO_JUDGE_API_KEY.", "argument": "Check the API key given."}.get(
                    self.config.key_source, f"Check {self.config.key_source}.")
                raise self._fatal_error(f"SIUO judge: {self._where()} rejected the API key (HTTP {status}: {detail}). {hint}")
            if status == 404:
                raise self._fatal_error(
                    f"SIUO judge: {self._where()} answered HTTP 404 ({detail}): the model does not exist there "
                    "or the base URL is wrong. Check SIUO_JUDGE_MODEL and SIUO_JUDGE_BASE_URL."
                )
            lowered = f"{message} {code}".lower()
            if status in (400, 422) and any(m in lowered for m in _UNSUPPORTED_MARKERS):
                self._switch_shape(shape, detail)
                return
            if status in (408, 409, 429) or status >= 500:
                raise _Retry(f"HTTP {status}", parse_retry_after(exc.response.headers))
            if "content_filter" not in lowered:
                with self._lock:
                    self._refusals += 1
                    refused_all = self._successes == 0 and self._refusals >= _REFUSALS_BEFORE_FATAL
                if refused_all:
                    raise self._fatal_error(
                        f"SIUO judge: {self._where()} refused the first {self._refusals} requests and accepted none "
                        f"(last: HTTP {status}: {detail}). Check the model, SIUO_JUDGE_REQUEST_SHAPE and the endpoint."
                    )
            raise _ItemError(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            if isinstance(exc, openai.APITimeoutError):
                raise _Retry(f"timeout ({type(cause).__name__})")
            raise _Retry(f"connection error ({type(cause).__name__})")
        if isinstance(exc, openai.APIResponseValidationError):
            raise _Retry("invalid response")
        raise exc

    async def _once(self, messages: list, shape: str, shard: int = 0) -> dict:
        cfg = self.config
        # The messages and every decoding parameter go through extra_body, exactly as built here, and
        # the reply is read as plain JSON (with_raw_response): the SDK's per-call type transform of the
        # message list and its model construction of the reply cost several times the CPU of the rest
        # of a call (benchmarks/judge_throughput.py), and older SDKs of the range lack some named
        # arguments. Transport, auth, proxies, TLS, redirects and error classes stay the SDK's.
        create = self._shards[shard].chat.completions.with_raw_response.create(
            model=cfg.model, messages=[], extra_body={"messages": messages, **cfg.shape_params(shape)},
            extra_headers=self._extra_headers,
        )
        raw = await asyncio.wait_for(create, timeout=cfg.timeout_s)
        try:
            payload = raw.http_response.json()
        except ValueError:
            raise _Retry("invalid response (not JSON)") from None
        if not isinstance(payload, dict):
            raise _Retry("invalid response (not a JSON object)")
        return payload

    async def _pass_gate(self) -> None:
        """Take the next start time: now, or later while a Retry-After holds every call.

        Once an endpoint has answered 429 with a Retry-After of ``d`` seconds, calls start one per
        ``pace`` (``max(1.1 x pace, d)`` after a 429, 5% shorter after each success) in the order they
        asked, instead of all at once when the wait ends: a rate-limited endpoint sees about one call per
        free slot, not ``concurrency`` calls per slot. Without a 429 the pace is 0 and nothing waits.
        All of this runs on the one event-loop thread: no lock needed.
        """
        now = time.monotonic()
        start = max(now, self._gate)
        if self._pace > 0:
            self._gate = start + self._pace
        if start > now:
            await asyncio.sleep(start - now)

    async def _wait(self, delay: float, reason: str, shared: bool) -> None:
        now = time.monotonic()
        if shared:  # a Retry-After holds every call, not only this one
            self._gate = max(self._gate, now + delay)
            if reason == "HTTP 429":  # at most one 10% increase per pace: a burst of 429s is one event
                grow = now - self._paced_at >= self._pace
                self._pace = min(max(1.1 * self._pace if grow else self._pace, delay), self.config.retry_after_cap_s)
                if grow:
                    self._paced_at = now
        if now + delay > self._wait_until:
            self._wait_until, self._wait_reason = now + delay, reason
        level = logging.WARNING if delay >= 5 else logging.INFO
        logger.log(level, "SIUO judge: %s from %s; waiting %.1f s%s", reason, self.config.endpoint_host, delay,
                   " (Retry-After)" if shared else "")
        if not shared:
            await asyncio.sleep(delay)

    async def _send(self, messages: list, preflight: bool = False, shard: int = 0) -> tuple[str, dict, str | None, bool, str]:
        """One judge request with retries. Returns ``(text, usage, response model, dry-run mark, shape sent)``.

        Raises _ItemError (this request failed), JudgeFatal (stop judging) or JudgeUnavailable (preflight).
        """
        cfg = self.config
        waited, retries, last = 0.0, 0, "unknown error"
        while True:
            await self._pass_gate()  # a Retry-After wait happens here, in line with the other calls
            if self._fatal is not None:
                raise self._fatal
            if not preflight and self._budget_blocked():
                raise _ItemError(BUDGET_ERROR)
            shape = self.shape
            self._bump(**({"preflight_calls": 1} if preflight else {"calls": 1}))
            try:
                try:
                    completion = await self._once(messages, shape, shard)
                except Exception as exc:
                    self._classify(exc, shape)
                    continue  # the request shape was switched: send again at once
                text, usage, model, marked = self._read(completion, preflight)
            except _Retry as exc:
                last = exc.reason
                shared = exc.retry_after is not None
                if shared:
                    delay = min(exc.retry_after, cfg.retry_after_cap_s)
                else:
                    retries += 1
                    if retries > (min(cfg.max_retries, _PREFLIGHT_RETRIES) if preflight else cfg.max_retries):
                        if preflight:
                            raise JudgeUnavailable(f"SIUO judge: cannot use {self._where()}: {last}. "
                                                   "Check that the server is up, or fix SIUO_JUDGE_BASE_URL.") from None
                        raise _ItemError(f"retries exhausted: {last}") from None
                    delay = self._backoff(retries - 1)
                if waited + delay > cfg.max_wait_s:
                    if preflight:
                        raise JudgeUnavailable(f"SIUO judge: {self._where()} kept answering {last}") from None
                    raise _ItemError(f"gave up after waiting {waited:.0f} s (SIUO_JUDGE_MAX_WAIT): {last}") from None
                waited += delay
                self._bump(retries=1, waited_s=delay)
                await self._wait(delay, last, shared)
                continue
            with self._lock:
                self._successes += 1
            self._pace *= 0.95
            return text, usage, model, marked, shape

    def _read(self, payload: dict, preflight: bool) -> tuple[str, dict, str | None, bool]:
        usage_in = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        pt = as_count(usage_in.get("prompt_tokens"))
        ct = as_count(usage_in.get("completion_tokens"))
        if (pt or ct) and not preflight:
            self._record_usage(pt, ct)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Retry("invalid response (no choices)")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            if preflight:
                content = ""
            else:
                reason = choices[0].get("finish_reason")
                hint = " (raise SIUO_JUDGE_MAX_COMPLETION_TOKENS)" if reason == "length" and self.shape == "reasoning" else ""
                raise _ItemError(f"empty reply (finish_reason={reason}){hint}")
        model = payload.get("model")
        marked = payload.get("system_fingerprint") == DRY_RUN_FINGERPRINT
        return content, {"prompt_tokens": pt, "completion_tokens": ct}, model if isinstance(model, str) else None, marked

    async def _call(self, req: JudgeRequest, shard: int = 0) -> tuple[JudgeReply, dict | None]:
        """Worker: one request, as a reply plus what to cache (None: nothing)."""
        try:
            data_url = self._cached_data_url(req.image_path)  # the common case: no thread hop
            if data_url is None:
                data_url = await asyncio.to_thread(self._data_url, req.image_path)
        except OSError as exc:
            return JudgeReply(req.key, None, f"image unreadable: {type(exc).__name__}", cached=False), None
        try:
            text, usage, model, marked, shape = await self._send(self._messages(req.prompt, data_url), shard=shard)
        except _ItemError as exc:
            return JudgeReply(req.key, None, self._redact(exc.reason), cached=False), None
        del data_url
        text = unicodedata.normalize("NFKC", text)
        if self.config.api_key and len(self.config.api_key) >= 8:
            text = text.replace(self.config.api_key, "***")
        reply = JudgeReply(req.key, text, None, False, usage["prompt_tokens"], usage["completion_tokens"])
        if marked:
            self._bump(dry_run_replies=1)
            if self.config.default_cache:  # a dry run never fills the cache a real run reads
                return reply, None
        return reply, {"model": self.config.model, "response_model": model, "request_shape": shape,
                       "params": self.config.shape_params(shape), "text": text, "usage": usage, "dry_run": marked}

    # ------------------------------------------------------------------ preflight
    def preflight(self) -> None:
        """One real minimal judge call (a tiny generated image, a short prompt): a missing or rejected
        key, an unreachable endpoint, a wrong model name or a refused request shape raise
        :class:`JudgeUnavailable` here, before any generation. A refused shape is switched, as in a run."""
        cfg = self.config
        host = cfg.endpoint_host
        if not cfg.api_key and (is_openai_api(cfg.base_url) or is_azure(cfg.base_url)):
            hint = "SIUO_JUDGE_API_KEY or OPENAI_API_KEY" if is_openai_api(cfg.base_url) else "SIUO_JUDGE_API_KEY"
            raise JudgeUnavailable(
                f"SIUO judge: no API key for {host}. Set {hint}, or point SIUO_JUDGE_BASE_URL at a local "
                "OpenAI-compatible server (e.g. vLLM/SGLang: http://127.0.0.1:8000/v1)."
            )
        self._ensure_started()
        data_url = "data:image/png;base64," + base64.b64encode(_tiny_png()).decode("ascii")
        future = self._loop.submit(self._send(self._messages(PREFLIGHT_PROMPT, data_url), preflight=True))
        try:
            future.result()
        except JudgeUnavailable:
            raise
        except _ItemError as exc:
            raise JudgeUnavailable(f"SIUO judge: the check call to {self._where()} failed: {self._redact(exc.reason)}") from None
        except BaseException:
            future.cancel()
            raise
        self._preflighted = True
        logger.info("SIUO judge: %s answered the check call (request shape %s)", self._where(), self.shape)

    # ------------------------------------------------------------------ run
    def cache_key_for(self, prompt: str, image_sha256: str, shape: str | None = None) -> str:
        cfg = self.config
        shape = shape or self.shape
        return cache_key(endpoint=cfg.endpoint, model=cfg.model, shape=shape,
                         params=cfg.shape_params(shape), prompt=prompt, image_sha256=image_sha256)

    async def _drive(self, pending: list, out: "queue.SimpleQueue") -> None:
        todo = iter(pending)

        async def worker(shard: int) -> None:
            for ckey, req in todo:  # one iterator shared by the workers (one thread: no lock)
                reply, to_cache = await self._call(req, shard)
                out.put((ckey, reply, to_cache))

        n = min(self.config.concurrency, len(pending))
        tasks = [asyncio.ensure_future(worker(i % len(self._shards))) for i in range(n)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def run(self, requests: Iterable[JudgeRequest], progress: bool = True, desc: str = "SIUO judge") -> dict[str, JudgeReply]:
        """Judge every request; returns ``{request.key: JudgeReply}`` (one per request).

        Raises :class:`JudgeFatal` (after keeping every reply already received in the cache) when
        the endpoint refuses in a way every further call would share.
        """
        if self._closed:
            raise RuntimeError("JudgeClient is closed")
        if self._fatal is not None:
            raise self._fatal
        requests = list(requests)
        if len({r.key for r in requests}) != len(requests):
            raise ValueError("JudgeClient.run: duplicate request key in one run()")
        if not requests:
            return {}

        replies: dict[str, JudgeReply] = {}
        groups: "OrderedDict[str, list[JudgeRequest]]" = OrderedDict()
        bar = None
        if progress:
            from tqdm.auto import tqdm  # lazy

            bar = tqdm(total=len(requests), desc=desc, file=sys.stderr, dynamic_ncols=True)
        last_refresh = [0.0]

        def refresh(force: bool = False) -> None:
            now = time.monotonic()
            if bar is None or not (force or now - last_refresh[0] >= _PROGRESS_INTERVAL_S):
                return
            last_refresh[0] = now
            with self._lock:
                s = self.stats
                postfix = {"sent": s.calls, "cached": s.cache_hits, "errors": s.failures}
            wait = self._wait_until - now
            if wait > 0.05:
                postfix["waiting"] = f"{wait:.0f}s ({self._wait_reason})"
            bar.set_postfix(postfix, refresh=False)
            bar.refresh()

        def finish(reply: JudgeReply) -> None:
            replies[reply.key] = reply
            if reply.text is None:
                self._bump(failures=1)
            if bar is not None:
                bar.update(1)

        future = None
        shas: dict[str, str] = {}
        try:
            for r in requests:  # 1) hash images, look up the cache, group identical requests
                try:
                    sha = self._hashes.sha256(r.image_path)
                except OSError as exc:
                    finish(JudgeReply(r.key, None, f"image unreadable: {type(exc).__name__}", cached=False))
                    continue
                ckey = self.cache_key_for(r.prompt, sha)
                shas[ckey] = sha
                if ckey in groups:
                    groups[ckey].append(r)
                    continue
                groups[ckey] = [r]
                entry = self._cache.get(ckey)
                if entry is not None:
                    usage = entry.get("usage") if isinstance(entry.get("usage"), dict) else {}
                    self._bump(cache_hits=1, dry_run_replies=int(entry.get("dry_run") is True))  # a cached dry-run reply stays one
                    finish(JudgeReply(r.key, entry["text"], None, cached=True,
                                      prompt_tokens=as_count(usage.get("prompt_tokens")),
                                      completion_tokens=as_count(usage.get("completion_tokens"))))
            self._hashes.save()  # now, so that a run killed while judging keeps its hashes
            pending = []
            for ckey, members in groups.items():
                head = members[0]
                if head.key in replies:
                    for dup in members[1:]:
                        self._bump(deduped=1)
                        finish(replace(replies[head.key], key=dup.key))
                else:
                    pending.append((ckey, head))
            refresh(force=True)

            if pending:  # 2) send the misses with bounded concurrency
                if self.preflight_first and not self._preflighted:
                    self.preflight()
                self._ensure_started()
                out: queue.SimpleQueue = queue.SimpleQueue()
                future = self._loop.submit(self._drive(pending, out))
                remaining = len(pending)
                while remaining:
                    try:
                        ckey, reply, to_cache = out.get(timeout=0.2)
                    except queue.Empty:
                        if future.done():
                            if not out.empty():
                                continue  # keep (and cache) every reply that arrived first
                            future.result()  # raises JudgeFatal (or a bug) from the workers
                            raise RuntimeError("SIUO judge: the workers stopped early")
                        refresh()
                        continue
                    remaining -= 1
                    if to_cache is not None:  # keyed by the request shape actually sent
                        head = groups[ckey][0]
                        self._cache.put(self.cache_key_for(head.prompt, shas[ckey], to_cache["request_shape"]), to_cache)
                    finish(reply)
                    for dup in groups[ckey][1:]:
                        self._bump(deduped=1)
                        finish(replace(reply, key=dup.key))
                    refresh()
                future.result()
            refresh(force=True)
        finally:
            if future is not None and not future.done():
                future.cancel()
            if bar is not None:
                bar.close()

        if self.stats.budget_exhausted:
            n_budget = sum(1 for r in replies.values() if r.error == BUDGET_ERROR)
            if n_budget:
                logger.warning("SIUO judge: token budget (%s) reached; %d request(s) not judged",
                               self.config.token_budget, n_budget)
        return {r.key: replies[r.key] for r in requests}

    def provenance(self) -> dict:
        """What a result file records about the judge (no key, no credentials)."""
        cfg, stats = self.config, self.stats
        return {
            "model": cfg.model,
            "endpoint_host": cfg.endpoint_host,
            "endpoint": cfg.endpoint,
            "key_source": cfg.key_source,
            "request_shape": self.shape,
            "request_shape_switched_from": self.shape_switched_from,
            "request_shape_switch_reason": self.shape_switch_reason,
            "decoding": cfg.shape_params(self.shape),
            "max_error_rate": cfg.max_error_rate,
            "dry_run": stats.dry_run_replies > 0,
            "usage": {
                "calls": stats.calls,
                "cache_hits": stats.cache_hits,
                "failures": stats.failures,
                "retries": stats.retries,
                "waited_s": round(stats.waited_s, 3),
                "prompt_tokens": stats.prompt_tokens,
                "completion_tokens": stats.completion_tokens,
                "budget_exhausted": stats.budget_exhausted,
                "token_budget": cfg.token_budget,
            },
        }
