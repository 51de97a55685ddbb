"""Retry: one judge request sent with the retry policy (:class:`Caller`), and what each error means
(:func:`classify`: retry, fail this request, switch the request shape, stop judging).

Waits and pacing between calls are :mod:`.pacing`'s. The caller's coroutines run on the judge's one
event-loop thread; its counters are shared with the client's thread under the client's lock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from .cache import MAX_REPLY_BYTES, as_count
from .errors import JudgeFatal, JudgeUnavailable
from .pacing import Pacer, limiter_hints, wait_asked

logger = logging.getLogger("siuo_task.judge")

_MAX_ERROR_CHARS = 300
UNSUPPORTED_MARKERS = (
    "unsupported parameter",
    "unsupported value",
    "unsupported_parameter",
    "unsupported_value",
    "unrecognized request argument",
    "not supported with this model",
)


def short(text: Any, limit: int = _MAX_ERROR_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Retry(Exception):
    """Send this request again (after ``retry_after`` seconds when the endpoint said so; ``rate_limited``:
    a 429, with the ``hints`` of its ``x-ratelimit-*`` headers)."""

    def __init__(self, reason: str, retry_after: float | None = None, rate_limited: bool = False, hints: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        self.hints = hints


class ItemError(Exception):
    """This request failed; the others go on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def error_detail(exc: Any) -> tuple[str, str]:
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


def backoff(attempt: int, base_s: float, cap_s: float) -> float:
    """Jittered exponential backoff for retry number ``attempt`` (0-based): in [c/2, c], c = min(cap, base x 2^attempt)."""
    ceiling = min(cap_s, base_s * (2**attempt))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class Failure:
    """What an SDK exception means.

    ``kind``: ``retry`` (transient; ``retry_after`` when the endpoint said how long, ``hints`` from its
    ``x-ratelimit-*`` headers), ``key`` (401/403: the key is rejected), ``missing`` (404: no such model
    or path), ``shape`` (a parameter of the request shape is refused), ``refused`` (any other client
    error: this request is refused), ``filtered`` (a content filter refused this request), ``proxy``
    (the proxy refused: 407), ``raise`` (not an API error: re-raise).
    """

    kind: str
    reason: str = ""
    status: int | None = None
    detail: str = ""
    retry_after: float | None = None
    hints: dict | None = None


def _causes(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _connection_reason(chain: list, via: str) -> str:
    """A connection failure, named by its root cause (the SDK's class can mislead: its aiohttp bridge
    maps a refused connection or a bad certificate to ConnectTimeout)."""
    root = chain[-1]
    tls = next((c for c in chain if isinstance(c, ssl.SSLError) or "SSL" in type(c).__name__ or "Certificate" in type(c).__name__), None)
    if tls is not None:
        why = getattr(tls, "reason", None) or getattr(tls, "strerror", None) or type(tls).__name__
        return f"connection error{via} (TLS: {short(why, 80)}; SSL_CERT_FILE names the certificates trusted)"
    name = type(root).__name__ if len(chain) > 1 else type(chain[0]).__name__
    if isinstance(root, TimeoutError) or "Timeout" in type(root).__name__:
        return f"timeout{via} ({name})"
    return f"connection error{via} ({name})"


def classify(exc: BaseException, timeout_s: float, proxy=None) -> Failure:
    """The meaning of an exception raised by one SDK call (``detail``: the server's words, unredacted).
    ``proxy``: the :class:`~.transport.Proxy` the call went through, named in connection failures."""
    import openai  # lazy: the SDK is imported when the first client starts

    via = f" via {proxy.described}" if proxy is not None else ""
    if isinstance(exc, asyncio.TimeoutError):
        return Failure("retry", f"timeout: no complete reply within {timeout_s:g} s (SIUO_JUDGE_TIMEOUT)")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message, code = error_detail(exc)
        detail = message or code
        if status == 407:
            return Failure("proxy", status=status, detail=detail or "Proxy Authentication Required")
        if status in (401, 403):
            return Failure("key", status=status, detail=detail)
        if status == 404:
            return Failure("missing", status=status, detail=detail)
        lowered = f"{message} {code}".lower()
        if status in (400, 422) and any(m in lowered for m in UNSUPPORTED_MARKERS):
            return Failure("shape", status=status, detail=detail)
        if status in (408, 409, 429) or status >= 500:
            headers = exc.response.headers
            reason = f"HTTP {status}" + (f" (through {proxy.described})" if proxy is not None and status in (502, 503, 504) else "")
            rate_limited = status == 429
            return Failure(
                "retry",
                reason,
                status=status,
                retry_after=wait_asked(headers, rate_limited),
                hints=limiter_hints(headers) if rate_limited else None,
            )
        return Failure("filtered" if "content_filter" in lowered else "refused", status=status, detail=detail)
    if isinstance(exc, openai.APIConnectionError):
        chain = list(_causes(exc))
        proxy_error = next((c for c in chain if type(c).__name__ == "ProxyError"), None)
        if proxy_error is not None and re.search(r"\b407\b", str(proxy_error)):
            return Failure("proxy", status=407, detail=str(proxy_error) or "Proxy Authentication Required")
        if proxy_error is not None:
            return Failure("retry", f"the proxy failed{via} ({short(proxy_error, 120)})")
        return Failure("retry", _connection_reason(chain, via))
    if isinstance(exc, openai.APIResponseValidationError):
        return Failure("retry", "invalid response")
    return Failure("raise")


_PREFLIGHT_RETRIES = 1  # the check call fails fast: an unreachable endpoint is named within seconds
REFUSALS_BEFORE_FATAL = 10  # real calls refused in a row (whatever was accepted before) that stop judging
DRY_RUN_FINGERPRINT = "siuo-dry-run"  # the dry-run judge marks its replies with this system_fingerprint
BUDGET_ERROR = "token budget reached"
MAX_BODY_BYTES = 4 * 1024 * 1024  # a larger HTTP body is not even parsed
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+\-]{0,127}")


def model_name(value: Any, secrets: tuple = ()) -> str | None:
    """``value`` when it looks like a model name (at most 128 characters of letters, digits and
    ``. _ : / @ + -``, no whitespace) and holds no secret; else None: what the server puts in a
    reply's ``model`` is stored only then."""
    if not isinstance(value, str) or not _MODEL_NAME_RE.fullmatch(value):
        return None
    if any(secret and secret in value for secret in secrets):
        return None
    return value


@dataclass
class Answer:
    """A successful call: the reply text (NFKC), its token usage, the model the endpoint named (when
    it looks like one), the dry-run mark, the request shape sent and the host that answered."""

    text: str
    usage: dict
    model: str | None
    dry_run: bool
    shape: str
    host: str | None = None


class Caller:
    """Sends one judge request with the retry policy, for one client (``owner``: counters, budget,
    redaction, the transport call). Holds what every request shares: the request shape (switched once
    when the endpoint refuses a parameter), the fatal error that stops judging, the pacer, the hosts
    that answered."""

    def __init__(self, owner, config):
        self.owner = owner
        self.config = config
        self.shape = config.initial_shape()
        self.shape_switched_from: str | None = None
        self.shape_switch_reason: str | None = None
        self.fatal: JudgeFatal | None = None
        self.pacer = Pacer(config.retry_after_cap_s, binding=config.concurrency)
        self.wait_until = 0.0  # the longest wait announced so far (the progress bar shows what is left)
        self.wait_reason = ""
        self.answered_by: set = set()
        self._accepted = 0  # real calls accepted (the preflight is not one)
        self._refused_in_a_row = 0

    def _fatal_error(self, message: str) -> JudgeFatal:
        exc = JudgeFatal(self.owner._redact(message))
        if self.fatal is None:
            self.fatal = exc
        return self.fatal

    def _switch_shape(self, used: str, detail: str) -> None:
        """The endpoint refused a parameter of shape ``used``: switch to the other shape, once."""
        where = self.owner._where()
        with self.owner._lock:
            if self.shape != used:
                return  # another call switched already
            if self.shape_switched_from is None:
                new = "chat" if used == "reasoning" else "reasoning"
                self.shape_switched_from, self.shape, self.shape_switch_reason = used, new, short(detail, 200)
                logger.warning("SIUO judge: %s refused the %r request shape (%s); switching to %r", where, used, short(detail, 160), new)
                return
        raise self._fatal_error(
            f"SIUO judge: {where} refuses both request shapes (chat: max_tokens + temperature; "
            f"reasoning: max_completion_tokens): {short(detail, 200)}. Set SIUO_JUDGE_REQUEST_SHAPE or check the model."
        )

    def _handle(self, exc: BaseException, shape: str, preflight: bool) -> None:
        """Turn an SDK exception into Retry / ItemError / JudgeFatal, or switch the request shape (returns)."""
        proxy = self.owner.proxy
        failure = classify(exc, self.config.timeout_s, proxy)
        if failure.kind == "raise":
            raise exc
        if failure.kind == "retry":
            raise Retry(failure.reason, failure.retry_after, failure.status == 429, failure.hints)
        where = self.owner._where()
        status, detail = failure.status, short(self.owner._redact(failure.detail), 200)
        if failure.kind == "proxy":
            named = proxy.described if proxy is not None else "a proxy"
            fix = f"Check the user and password in {proxy.variable}" if proxy is not None else "Check the proxy settings"
            raise self._fatal_error(
                f"SIUO judge: {named} refused the call to {where} (HTTP 407 Proxy Authentication "
                f"Required: {detail}). {fix}, or set NO_PROXY for the judge's host."
            )
        if failure.kind == "key":
            hint = {None: "Set SIUO_JUDGE_API_KEY.", "argument": "Check the API key given."}.get(
                self.config.key_source, f"Check {self.config.key_source}."
            )
            raise self._fatal_error(f"SIUO judge: {where} rejected the API key (HTTP {status}: {detail}). {hint}")
        if failure.kind == "missing":
            raise self._fatal_error(
                f"SIUO judge: {where} answered HTTP 404 ({detail}): the model does not exist there "
                f"or the base URL is wrong. Check {self.config.variable_for('model')} and {self.config.variable_for('base_url')}."
            )
        if failure.kind == "shape":
            self._switch_shape(shape, detail)
            return
        if failure.kind == "refused" and not preflight:
            with self.owner._lock:
                self._refused_in_a_row += 1
                run, accepted = self._refused_in_a_row, self._accepted
            if run >= REFUSALS_BEFORE_FATAL:
                what = f"refused the first {run} requests and accepted none" if not accepted else f"refused {run} requests in a row"
                raise self._fatal_error(
                    f"SIUO judge: {where} {what} (last: HTTP {status}: {detail}). "
                    "Check the model, SIUO_JUDGE_REQUEST_SHAPE and the endpoint."
                )
        raise ItemError(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")

    def _announce(self, delay: float, reason: str, shared: bool) -> None:
        now = time.monotonic()
        if now + delay > self.wait_until:
            self.wait_until, self.wait_reason = now + delay, reason
        level = logging.WARNING if delay >= 5 else logging.INFO
        logger.log(
            level,
            "SIUO judge: %s from %s; waiting %.1f s%s",
            reason,
            self.config.endpoint_host,
            delay,
            " (Retry-After: every call waits)" if shared else "",
        )

    def _unusable(self, last: str) -> JudgeUnavailable:
        proxy = self.owner.proxy
        if proxy is not None and (last.startswith(("connection error", "the proxy", "timeout via")) or "through the proxy" in last):
            fix = f"Check that the proxy is up, or fix {proxy.variable} / NO_PROXY."
        else:
            fix = f"Check that the server is up, or fix {self.config.variable_for('base_url')}."
        return JudgeUnavailable(self.owner._redact(f"SIUO judge: cannot use {self.owner._where()}: {last}. {fix}"))

    async def call(self, messages: list, preflight: bool = False, shard: int = 0) -> Answer:
        """One judge request with retries.

        Raises ItemError (this request failed), JudgeFatal (stop judging) or JudgeUnavailable (preflight).
        """
        cfg, owner, pacer = self.config, self.owner, self.pacer
        waited, retries, last = 0.0, 0, "unknown error"
        while True:
            await pacer.take_slot()  # a Retry-After or the pacing holds the start here, in line with the other calls
            owner.stats.waited_s = pacer.waited_s
            if self.fatal is not None:
                raise self.fatal
            if not preflight and owner._budget_blocked():
                raise ItemError(BUDGET_ERROR)
            shape = self.shape
            started = pacer.clock()
            owner._bump(**({"preflight_calls": 1} if preflight else {"calls": 1}))
            try:
                try:
                    payload, headers, host = await owner._once(messages, shape, shard)
                except Exception as exc:
                    self._handle(exc, shape, preflight)
                    continue  # the request shape was switched: send again at once
                answer = self._read(payload, preflight, shape)
            except Retry as exc:
                last = exc.reason
                shared = exc.retry_after is not None
                if shared:
                    delay = min(exc.retry_after, cfg.retry_after_cap_s)
                else:
                    retries += 1
                    if retries > (min(cfg.max_retries, _PREFLIGHT_RETRIES) if preflight else cfg.max_retries):
                        if preflight:
                            raise self._unusable(last) from None
                        raise ItemError(f"retries exhausted: {last}") from None
                    delay = owner._backoff(retries - 1)
                if waited + delay > cfg.max_wait_s:
                    if preflight:
                        raise JudgeUnavailable(f"SIUO judge: {owner._where()} kept answering {last}") from None
                    raise ItemError(f"gave up after waiting {waited:.0f} s (SIUO_JUDGE_MAX_WAIT): {last}") from None
                waited += delay
                owner._bump(retries=1)
                self._announce(delay, last, shared)
                if shared:  # a Retry-After holds every call, not only this one
                    pacer.hold(delay, exc.rate_limited, exc.hints, started)
                    owner.stats.waited_s = pacer.waited_s
                else:
                    await pacer.sleep(delay)
                    owner.stats.waited_s = pacer.waited_s
                continue
            if headers is not None:
                pacer.observe(limiter_hints(headers))
            answer.host = host
            with owner._lock:
                if host:
                    self.answered_by.add(host)
                if not preflight:
                    self._accepted += 1
                    self._refused_in_a_row = 0
            return answer

    def _read(self, payload: dict, preflight: bool, shape: str) -> Answer:

        usage_in = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        pt = as_count(usage_in.get("prompt_tokens"))
        ct = as_count(usage_in.get("completion_tokens"))
        if (pt or ct) and not preflight:
            self.owner._record_usage(pt, ct)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise Retry("invalid response (no choices)")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            if preflight:
                content = ""
            else:
                reason = choices[0].get("finish_reason")
                hint = " (raise SIUO_JUDGE_MAX_COMPLETION_TOKENS)" if reason == "length" and self.shape == "reasoning" else ""
                raise ItemError(f"empty reply (finish_reason={reason}){hint}")
        text = unicodedata.normalize("NFKC", content)
        size = len(text.encode("utf-8"))
        if size > MAX_REPLY_BYTES:
            raise ItemError(f"reply too large ({size} bytes; a judge reply may have at most {MAX_REPLY_BYTES})")
        return Answer(
            text,
            {"prompt_tokens": pt, "completion_tokens": ct},
            model_name(payload.get("model"), self.owner.secrets),
            payload.get("system_fingerprint") == DRY_RUN_FINGERPRINT,
            shape,
        )
