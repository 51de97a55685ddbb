"""Retry: one judge request sent with the retry policy (:class:`Caller`), and what each error means
(:func:`classify`: retry, fail this request, switch the request shape, stop judging).

Waits and pacing between calls are :mod:`.pacing`'s. The caller's coroutines run on the judge's one
event-loop thread; its counters are shared with the client's thread under the client's lock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Optional

from .errors import JudgeFatal, JudgeUnavailable
from .pacing import Pacer, parse_retry_after

logger = logging.getLogger("siuo_task.judge")

_MAX_ERROR_CHARS = 300
UNSUPPORTED_MARKERS = ("unsupported parameter", "unsupported value", "unsupported_parameter", "unsupported_value",
                       "unrecognized request argument", "not supported with this model")


def short(text: Any, limit: int = _MAX_ERROR_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Retry(Exception):
    """Send this request again (after ``retry_after`` seconds when the endpoint said so)."""

    def __init__(self, reason: str, retry_after: Optional[float] = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


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

    ``kind``: ``retry`` (transient; ``retry_after`` when the endpoint said how long), ``key``
    (401/403: the key is rejected), ``missing`` (404: no such model or path), ``shape`` (a parameter
    of the request shape is refused), ``refused`` (any other client error: this request is refused),
    ``filtered`` (a content filter refused this request), ``raise`` (not an API error: re-raise).
    """

    kind: str
    reason: str = ""
    status: Optional[int] = None
    detail: str = ""
    retry_after: Optional[float] = None


def classify(exc: BaseException, timeout_s: float) -> Failure:
    """The meaning of an exception raised by one SDK call (``detail``: the server's words, unredacted)."""
    import openai  # lazy: the SDK is imported when the first client starts

    if isinstance(exc, asyncio.TimeoutError):
        return Failure("retry", f"timeout: no complete reply within {timeout_s:g} s (SIUO_JUDGE_TIMEOUT)")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message, code = error_detail(exc)
        detail = message or code
        if status in (401, 403):
            return Failure("key", status=status, detail=detail)
        if status == 404:
            return Failure("missing", status=status, detail=detail)
        lowered = f"{message} {code}".lower()
        if status in (400, 422) and any(m in lowered for m in UNSUPPORTED_MARKERS):
            return Failure("shape", status=status, detail=detail)
        if status in (408, 409, 429) or status >= 500:
            return Failure("retry", f"HTTP {status}", status=status, retry_after=parse_retry_after(exc.response.headers))
        return Failure("filtered" if "content_filter" in lowered else "refused", status=status, detail=detail)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        if isinstance(exc, openai.APITimeoutError):
            return Failure("retry", f"timeout ({type(cause).__name__})")
        return Failure("retry", f"connection error ({type(cause).__name__})")
    if isinstance(exc, openai.APIResponseValidationError):
        return Failure("retry", "invalid response")
    return Failure("raise")




_PREFLIGHT_RETRIES = 1  # the check call fails fast: an unreachable endpoint is named within seconds
_REFUSALS_BEFORE_FATAL = 10  # client errors in a row, with no success yet, that stop judging
DRY_RUN_FINGERPRINT = "siuo-dry-run"  # the dry-run judge marks its replies with this system_fingerprint
BUDGET_ERROR = "token budget reached"


@dataclass
class Answer:
    """A successful call: the reply text (NFKC), its token usage, the model the endpoint named, the
    dry-run mark and the request shape sent."""

    text: str
    usage: dict
    model: Optional[str]
    dry_run: bool
    shape: str


class Caller:
    """Sends one judge request with the retry policy, for one client (``owner``: counters, budget,
    redaction, the transport call). Holds what every request shares: the request shape (switched once
    when the endpoint refuses a parameter), the fatal error that stops judging, the pacer."""

    def __init__(self, owner, config):
        self.owner = owner
        self.config = config
        self.shape = config.initial_shape()
        self.shape_switched_from: Optional[str] = None
        self.shape_switch_reason: Optional[str] = None
        self.fatal: Optional[JudgeFatal] = None
        self.pacer = Pacer(config.retry_after_cap_s)
        self.wait_until = 0.0  # the longest wait announced so far (the progress bar shows what is left)
        self.wait_reason = ""
        self._successes = 0
        self._refusals = 0

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
                logger.warning("SIUO judge: %s refused the %r request shape (%s); switching to %r",
                               where, used, short(detail, 160), new)
                return
        raise self._fatal_error(
            f"SIUO judge: {where} refuses both request shapes (chat: max_tokens + temperature; "
            f"reasoning: max_completion_tokens): {short(detail, 200)}. Set SIUO_JUDGE_REQUEST_SHAPE or check the model."
        )

    def _handle(self, exc: BaseException, shape: str) -> None:
        """Turn an SDK exception into Retry / ItemError / JudgeFatal, or switch the request shape (returns)."""
        failure = classify(exc, self.config.timeout_s)
        if failure.kind == "raise":
            raise exc
        if failure.kind == "retry":
            raise Retry(failure.reason, failure.retry_after)
        where = self.owner._where()
        status, detail = failure.status, short(self.owner._redact(failure.detail), 200)
        if failure.kind == "key":
            hint = {None: "Set SIUO_JUDGE_API_KEY.", "argument": "Check the API key given."}.get(
                self.config.key_source, f"Check {self.config.key_source}.")
            raise self._fatal_error(f"SIUO judge: {where} rejected the API key (HTTP {status}: {detail}). {hint}")
        if failure.kind == "missing":
            raise self._fatal_error(
                f"SIUO judge: {where} answered HTTP 404 ({detail}): the model does not exist there "
                "or the base URL is wrong. Check SIUO_JUDGE_MODEL and SIUO_JUDGE_BASE_URL."
            )
        if failure.kind == "shape":
            self._switch_shape(shape, detail)
            return
        if failure.kind == "refused":
            with self.owner._lock:
                self._refusals += 1
                refused_all = self._successes == 0 and self._refusals >= _REFUSALS_BEFORE_FATAL
            if refused_all:
                raise self._fatal_error(
                    f"SIUO judge: {where} refused the first {self._refusals} requests and accepted none "
                    f"(last: HTTP {status}: {detail}). Check the model, SIUO_JUDGE_REQUEST_SHAPE and the endpoint."
                )
        raise ItemError(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")

    async def _wait(self, delay: float, reason: str, shared: bool) -> None:
        now = time.monotonic()
        if shared:  # a Retry-After holds every call, not only this one
            self.pacer.hold(delay, reason)
        if now + delay > self.wait_until:
            self.wait_until, self.wait_reason = now + delay, reason
        level = logging.WARNING if delay >= 5 else logging.INFO
        logger.log(level, "SIUO judge: %s from %s; waiting %.1f s%s", reason, self.config.endpoint_host, delay,
                   " (Retry-After)" if shared else "")
        if not shared:
            await asyncio.sleep(delay)

    async def call(self, messages: list, preflight: bool = False, shard: int = 0) -> Answer:
        """One judge request with retries.

        Raises ItemError (this request failed), JudgeFatal (stop judging) or JudgeUnavailable (preflight).
        """
        cfg, owner = self.config, self.owner
        waited, retries, last = 0.0, 0, "unknown error"
        while True:
            await self.pacer.take_slot()  # a Retry-After wait happens here, in line with the other calls
            if self.fatal is not None:
                raise self.fatal
            if not preflight and owner._budget_blocked():
                raise ItemError(BUDGET_ERROR)
            shape = self.shape
            owner._bump(**({"preflight_calls": 1} if preflight else {"calls": 1}))
            try:
                try:
                    payload = await owner._once(messages, shape, shard)
                except Exception as exc:
                    self._handle(exc, shape)
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
                            raise JudgeUnavailable(f"SIUO judge: cannot use {owner._where()}: {last}. "
                                                   "Check that the server is up, or fix SIUO_JUDGE_BASE_URL.") from None
                        raise ItemError(f"retries exhausted: {last}") from None
                    delay = owner._backoff(retries - 1)
                if waited + delay > cfg.max_wait_s:
                    if preflight:
                        raise JudgeUnavailable(f"SIUO judge: {owner._where()} kept answering {last}") from None
                    raise ItemError(f"gave up after waiting {waited:.0f} s (SIUO_JUDGE_MAX_WAIT): {last}") from None
                waited += delay
                owner._bump(retries=1, waited_s=delay)
                await self._wait(delay, last, shared)
                continue
            with owner._lock:
                self._successes += 1
            self.pacer.success()
            return answer

    def _read(self, payload: dict, preflight: bool, shape: str) -> Answer:
        from .cache import as_count

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
        model = payload.get("model")
        return Answer(unicodedata.normalize("NFKC", content), {"prompt_tokens": pt, "completion_tokens": ct},
                      model if isinstance(model, str) else None, payload.get("system_fingerprint") == DRY_RUN_FINGERPRINT,
                      shape)
