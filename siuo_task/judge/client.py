"""The judge client proper: :class:`JudgeClient` implements :class:`siuo_task.core.judging.Judge` over
an OpenAI-compatible endpoint - bounded concurrency on one event-loop thread, our own bounded retry
policy and whole-request deadline, the token budget, the disk cache, de-duplication within a run,
progress (:mod:`.progress`), and a preflight that makes one real minimal judge call.

Its parts live beside it: :mod:`.endpoint` (which API, URL and key), :mod:`.transport` (SDK clients,
proxies, the event-loop thread), :mod:`.retry` (one request with the retry policy, what an error
means), :mod:`.pacing` (waits, rate limits), :mod:`.images` (data URLs, image hashes),
:mod:`.cache`, :mod:`.redaction` and :mod:`.stats` (what the client counts). No credential is ever
written to exceptions, logs, reprs, cache files, replies or provenance.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from siuo_task.core.judging import JudgeReply, JudgeRequest

from . import transport
from .cache import ReplyCache, as_count, cache_key
from .config import JudgeConfig
from .endpoint import MIN_SECRET_CHARS
from .errors import JudgeFatal, JudgeUnavailable  # noqa: F401 - re-exported (0.1 import path)
from .images import DataUrls, ImageHashes, data_url_of_bytes, tiny_png
from .pacing import parse_retry_after  # noqa: F401 - re-exported (0.1 import path)
from .progress import progress_bar
from .redaction import guard_http_logs, redact
from .retry import BUDGET_ERROR, DRY_RUN_FINGERPRINT, MAX_BODY_BYTES, Caller, ItemError, Retry, backoff
from .stats import JudgeStats

logger = logging.getLogger("siuo_task.judge")

__all__ = [
    "BUDGET_ERROR",
    "DRY_RUN_FINGERPRINT",
    "JudgeClient",
    "JudgeFatal",
    "JudgeReply",
    "JudgeRequest",
    "JudgeStats",
    "JudgeUnavailable",
    "PREFLIGHT_PROMPT",
    "parse_retry_after",
]

_SHARD_SIZE = 4  # workers per SDK client
_FATAL_GRACE_S = 5.0  # when judging stops, how long the calls already sent may take to land
PREFLIGHT_PROMPT = "This is a connection check of an image-grading judge. Reply with the single word OK."


def _messages(prompt: str, data_url: str) -> list:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": data_url}},
            ],
        }
    ]


class JudgeClient:
    """Judge client for an OpenAI-compatible chat-completions endpoint (OpenAI, Azure, vLLM, SGLang, ...)."""

    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    # True: run() makes the preflight check call before its first uncached call (``siuo score gen``:
    # a warm cache needs no judge at all, a cold one fails on its first call, not its 300th).
    preflight_first: bool = False

    def __init__(self, config: JudgeConfig, usage_sink: Callable[[str, int, int], None] | None = None):
        """``usage_sink(model, prompt_tokens, completion_tokens)``, when given, is called for every judge
        reply that reports its usage (not the preflight, never a cache hit): a harness's own usage
        accounting. A sink that raises is dropped with a warning; judging goes on."""
        self.config = config
        self._usage_sink = usage_sink
        self.stats = JudgeStats()
        self.cache_dir = config.resolved_cache_dir
        root = None if self.cache_dir is None else str(self.cache_dir)
        self._cache = ReplyCache(root)
        self._hashes = ImageHashes(root)
        self._images = DataUrls()
        self._lock = threading.Lock()
        self._spent_tokens = 0
        target = config.target
        self.proxy = transport.proxy_for(target.url)  # named in connection errors; routing is the SDK's
        # every credential in play, in every form it could be echoed in: redacted from every output
        self.secrets = tuple(dict.fromkeys(target.secrets() + transport.proxy_secrets()))
        self._caller = Caller(self, config)  # one request with the retry policy; the shape and the fatal error
        self.transport: str | None = None  # "aiohttp" or "httpx", once started
        self._loop: transport.EventLoop | None = None
        self._sdk = None
        self._shards: list = []
        self._extra_headers: dict = {}
        self._closed = False
        self._preflighted = False
        if self.cache_dir is None or not self.cache_dir.is_dir():
            transport.preload()  # no cache to answer from: calls will be needed, import the SDK meanwhile

    def __repr__(self) -> str:
        c = self.config
        return f"JudgeClient(model={c.model!r}, host={c.endpoint_host!r}, concurrency={c.concurrency})"

    @property
    def max_error_rate(self) -> float:
        return self.config.max_error_rate

    @property
    def shape(self) -> str:
        """The request shape sent now ("chat" or "reasoning"; switched once when the endpoint refuses one)."""
        return self._caller.shape

    @property
    def shape_switched_from(self) -> str | None:
        return self._caller.shape_switched_from

    @property
    def shape_switch_reason(self) -> str | None:
        return self._caller.shape_switch_reason

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

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: Any) -> str:
        return redact(text, *self.secrets)

    def _bump(self, **deltas: Any) -> None:
        with self._lock:
            for name, d in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + d)

    def _where(self) -> str:
        via = f" via {self.proxy.described}" if self.proxy is not None else ""
        return f"{self.config.endpoint_host} (model {self.config.model}){via}"

    def _ensure_started(self) -> None:
        if self._closed:
            raise RuntimeError("JudgeClient is closed")
        if self._sdk is None:
            transport.check_usable(self.config.target)
            guard_http_logs(self.secrets)
            self.transport = transport.choose_transport(self.config.transport)
            # httpx: one SDK client (and connection pool) per _SHARD_SIZE workers: httpcore scans every
            # pooled connection on each request, which at concurrency 32 cost more CPU than the call
            # itself. aiohttp's pool has no such cost: one client.
            n = 1 if self.transport == "aiohttp" else max(1, math.ceil(self.config.concurrency / _SHARD_SIZE))
            made = [transport.make_sdk(self.config.target, self.config.timeout_s, self.transport) for _ in range(n)]
            self._shards = [sdk for sdk, _ in made]
            self._extra_headers = made[0][1]
            if self._loop is None:
                self._loop = transport.EventLoop()
            self._sdk = self._shards[0]

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
            sink = self._usage_sink
        if sink is not None:
            try:
                sink(self.config.model, prompt_tokens, completion_tokens)
            except Exception as exc:  # noqa: BLE001 - the harness's accounting must never fail judging
                with self._lock:
                    dropped, self._usage_sink = self._usage_sink is not None, None
                if dropped:
                    logger.warning(
                        "SIUO judge: the harness's usage accounting refused the judge's usage (%s: %s); "
                        "the judge's tokens are in the result's provenance.judge.usage only",
                        type(exc).__name__,
                        self._redact(exc),
                    )

    # ------------------------------------------------------------------ one request
    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, self.backoff_base_s, self.backoff_cap_s)

    async def _once(self, messages: list, shape: str, shard: int = 0) -> tuple:
        """One HTTP call through the transport: ``(reply JSON object, response headers, answering host)``
        (Retry when the body is not a JSON object, ItemError when it is too large to read)."""
        cfg = self.config
        body = {"model": cfg.model, "messages": messages, **cfg.shape_params(shape)}
        response = await transport.send(self._shards[shard], self._extra_headers, body, cfg.timeout_s)
        if len(response.content) > MAX_BODY_BYTES:
            raise ItemError(f"reply too large ({len(response.content)} bytes of HTTP body)")
        try:
            payload = response.json()
        except ValueError:
            raise Retry("invalid response (not JSON)") from None
        if not isinstance(payload, dict):
            raise Retry("invalid response (not a JSON object)")
        return payload, response.headers, transport.answering_host(response)

    async def _call(self, req: JudgeRequest, shard: int = 0) -> tuple[JudgeReply, dict | None]:
        """Worker: one request, as a reply plus what to cache (None: nothing)."""
        try:
            data_url = self._images.cached(req.image_path)  # the common case: no thread hop
            if data_url is None:
                data_url = await asyncio.to_thread(self._images.get, req.image_path)
        except OSError as exc:
            return JudgeReply(req.key, None, f"image unreadable: {type(exc).__name__}", cached=False), None
        try:
            answer = await self._caller.call(_messages(req.prompt, data_url), shard=shard)
        except ItemError as exc:
            return JudgeReply(req.key, None, self._redact(exc.reason), cached=False), None
        del data_url
        text = answer.text
        for secret in self.secrets:  # a server that echoes a credential in its reply: never stored
            if len(secret) >= MIN_SECRET_CHARS:
                text = text.replace(secret, "***")
        usage = answer.usage
        reply = JudgeReply(req.key, text, None, False, usage["prompt_tokens"], usage["completion_tokens"])
        if answer.dry_run:
            self._bump(dry_run_replies=1)
            if self.config.default_cache:  # a dry run never fills the cache a real run reads
                return reply, None
        return reply, {
            "model": self.config.model,
            "response_model": answer.model,
            "request_shape": answer.shape,
            "params": self.config.shape_params(answer.shape),
            "text": text,
            "usage": usage,
            "dry_run": answer.dry_run,
        }

    # ------------------------------------------------------------------ preflight
    def preflight(self) -> None:
        """One real minimal judge call (a tiny generated image, a short prompt): a missing or rejected
        key, an unreachable endpoint, a wrong model name or a refused request shape raise
        :class:`JudgeUnavailable` here, before any generation, naming the variables the judge settings
        came from. A refused shape is switched, as in a run."""
        try:
            self._preflight()
        except JudgeUnavailable as exc:
            raise type(exc)(f"{exc} [judge settings: {self.config.settings_described}]") from None

    def _preflight(self) -> None:
        target = self.config.target
        if target.auth_header is None and target.kind in ("openai", "azure"):
            hint = (
                "SIUO_JUDGE_API_KEY or OPENAI_API_KEY (OPENAI_API_KEY goes to OpenAI's API only while OPENAI_API_URL is unset)"
                if target.kind == "openai"
                else "SIUO_JUDGE_API_KEY (or AZURE_API_KEY, with AZURE_ENDPOINT naming this resource)"
            )
            raise JudgeUnavailable(
                f"SIUO judge: no API key for {target.host}. Set {hint}, or point SIUO_JUDGE_BASE_URL at a local "
                "OpenAI-compatible server (e.g. vLLM/SGLang: http://127.0.0.1:8000/v1)."
            )
        self._ensure_started()
        data_url = data_url_of_bytes(tiny_png(), "image/png")
        future = self._loop.submit(self._caller.call(_messages(PREFLIGHT_PROMPT, data_url), preflight=True))
        try:
            future.result()
        except JudgeUnavailable:
            raise
        except ItemError as exc:
            raise JudgeUnavailable(f"SIUO judge: the check call to {self._where()} failed: {self._redact(exc.reason)}") from None
        except BaseException:
            future.cancel()
            raise
        self._preflighted = True
        logger.info(
            "SIUO judge: %s answered the check call (model %s, request shape %s, %s, %s transport)",
            self.config.target.described,
            self.config.model,
            self.shape,
            self.config.target.auth,
            self.transport,
        )

    # ------------------------------------------------------------------ run
    def cache_key_for(self, prompt: str, image_sha256: str, shape: str | None = None) -> str:
        cfg = self.config
        shape = shape or self.shape
        return cache_key(
            endpoint=cfg.endpoint, model=cfg.model, shape=shape, params=cfg.shape_params(shape), prompt=prompt, image_sha256=image_sha256
        )

    async def _drive(self, pending: list, out: queue.SimpleQueue) -> None:
        todo = iter(pending)
        stopping = []  # non-empty once a worker failed

        async def worker(shard: int) -> None:
            for ckey, req in todo:  # one iterator shared by the workers (one thread: no lock)
                if stopping or self._caller.fatal is not None:
                    return  # judging stops: no new call
                reply, to_cache = await self._call(req, shard)
                out.put((ckey, reply, to_cache))

        n = min(self.config.concurrency, len(pending))
        tasks = [asyncio.ensure_future(worker(i % len(self._shards))) for i in range(n)]
        try:
            done, running = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [task.exception() for task in done if task.exception() is not None]
            if failed:
                stopping.append(failed[0])
                # The calls already sent are paid for: give them a bounded grace to land (no new call
                # or retry starts once judging stops), so their replies are cached, then stop.
                if running:
                    await asyncio.wait(running, timeout=_FATAL_GRACE_S)
                raise failed[0]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._caller.pacer.stop()

    def run(self, requests: Iterable[JudgeRequest], progress: bool = True, desc: str = "SIUO judge") -> dict[str, JudgeReply]:
        """Judge every request; returns ``{request.key: JudgeReply}`` (one per request).

        Raises :class:`JudgeFatal` (after keeping every reply already received in the cache) when
        the endpoint refuses in a way every further call would share.
        """
        if self._closed:
            raise RuntimeError("JudgeClient is closed")
        if self._caller.fatal is not None:
            raise self._caller.fatal
        requests = list(requests)
        if len({r.key for r in requests}) != len(requests):
            raise ValueError("JudgeClient.run: duplicate request key in one run()")
        if not requests:
            return {}

        replies: dict[str, JudgeReply] = {}
        groups: OrderedDict[str, list[JudgeRequest]] = OrderedDict()
        bar, refresh = progress_bar(self, len(requests), desc, progress)

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
                if entry is None and self._sdk is None:
                    transport.preload()  # a call will be needed: import the SDK while the lookups go on
                elif entry is not None:
                    usage = entry.get("usage") if isinstance(entry.get("usage"), dict) else {}
                    self._bump(cache_hits=1, dry_run_replies=int(entry.get("dry_run") is True))  # a cached dry-run reply stays one
                    finish(
                        JudgeReply(
                            r.key,
                            entry["text"],
                            None,
                            cached=True,
                            prompt_tokens=as_count(usage.get("prompt_tokens")),
                            completion_tokens=as_count(usage.get("completion_tokens")),
                        )
                    )
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
                            raise RuntimeError("SIUO judge: the workers stopped early") from None
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
                logger.warning("SIUO judge: token budget (%s) reached; %d request(s) not judged", self.config.token_budget, n_budget)
        return {r.key: replies[r.key] for r in requests}

    def provenance(self) -> dict:
        """What a result file records about the judge (no key, no credentials)."""
        cfg, stats = self.config, self.stats
        with self._lock:
            answered = sorted(self._caller.answered_by)
        return {
            "model": cfg.model,
            "endpoint_host": cfg.endpoint_host,
            "endpoint": cfg.target.url,  # no credentials, no query
            "answered_by": answered,  # the hosts whose replies were used (after any redirect); [] when all were cached
            "key_source": cfg.target.key_source,
            "settings": cfg.settings,  # the variable each setting came from: names, never values
            "lmms_eval_judge": cfg.lmms_eval_judge_provenance(),
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
                "waited_s": round(self._caller.pacer.waited_s, 3),
                "prompt_tokens": stats.prompt_tokens,
                "completion_tokens": stats.completion_tokens,
                "budget_exhausted": stats.budget_exhausted,
                "token_budget": cfg.token_budget,
            },
        }
