"""A fake OpenAI-compatible chat-completions server (stdlib only).

Used by the tests and benchmarks (which add the repository root to ``sys.path``); users get the
plain dry-run judge in :mod:`siuo_task.judge.dry_run`. Run by hand::

    python -m siuo_dev.fake_judge_server --port 8011 --latency 0.1

It binds 127.0.0.1 only. Chat requests are answered by a *responder*
(``body -> assistant text``); :func:`default_responder` plays a deterministic
SIUO judge (driven by marker words in the graded answer) and a trivial model.
Faults can be injected per request to exercise client retries; rate limits, servers that echo
what they were sent and oversized replies too. :mod:`siuo_dev.fake_proxy` is a forward proxy
(with authentication) for the same tests.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from siuo_task.judge import PREFLIGHT_PROMPT
from siuo_task.judge.dry_run import (  # noqa: F401 - re-exported for the tests
    EFFECTIVENESS_PREFIX,
    MCQA_MARKER,
    NO_VERDICT_TEXT,
    SAFETY_PREFIX,
    completion,
    default_responder,
    prompt_text,
)

__all__ = ["FakeOpenAIServer", "default_responder", "prompt_text", "SAFETY_PREFIX", "EFFECTIVENESS_PREFIX", "MCQA_MARKER"]


def _slim_part(part: Any) -> Any:
    image = part.get("image_url") if isinstance(part, dict) else None
    url = image.get("url") if isinstance(image, dict) else None
    if not (isinstance(url, str) and url.startswith("data:") and "," in url):
        return part
    head, data = url.split(",", 1)
    return {**part, "image_url": {**image, "url": f"{head},<{len(data)} bytes>"}}


def _without_images(body: dict) -> dict:
    """A copy of ``body`` whose data-URL images read ``data:<mime>;base64,<N bytes>`` (N: length of the base64 text)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return dict(body)
    slim = []
    for msg in messages:
        if isinstance(msg, dict) and isinstance(msg.get("content"), list):
            msg = {**msg, "content": [_slim_part(part) for part in msg["content"]]}
        slim.append(msg)
    return {**body, "messages": slim}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "FakeOpenAI/1.0"
    owner: FakeOpenAIServer  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
        pass

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner.connections += 1

    # -- helpers
    def _send(self, status: int, payload: bytes, content_type: str = "application/json", extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
            if self.owner.drop_connections:
                self.close_connection = True  # without a "Connection: close" header
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True

    def _send_json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), extra=extra)

    def _authorised(self) -> bool:
        key = self.owner.require_key
        if key is None:
            return True
        auth = self.headers.get("Authorization", "")
        return auth == f"Bearer {key}" or self.headers.get("api-key") == key

    def _deny(self) -> None:
        self._send_json(
            401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}}
        )

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    # -- routes
    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/models"):
            if not self._authorised():
                self._deny()
                return
            self._send_json(200, {"object": "list", "data": [{"id": "fake-judge", "object": "model"}]})
            return
        self._send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self._read_body()
        if not path.endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": "not found"}})
            return
        owner = self.owner
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except Exception:
            self._send_json(400, {"error": {"message": "request body is not valid JSON"}})
            return
        fault = owner._next_fault(body, dict(self.headers.items()), self.path)

        if not self._authorised():
            self._deny()
            return
        limit_headers: dict = {}
        if owner.rate_per_min:  # a gateway's limiter: refused calls are answered at once
            wait, limit_headers = owner._admit()
            if wait > 0:
                extra = {"Retry-After": str(max(1, math.ceil(wait)))}
                if owner.retry_after_ms:
                    extra["retry-after-ms"] = f"{wait * 1000:.0f}"
                self._send_json(
                    429,
                    {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                    {**extra, **limit_headers},
                )
                return
        if owner.latency_s > 0:
            owner._stop.wait(owner.latency_s)
        if owner.hold_after is not None:
            with owner._lock:
                hold = owner._served_ok >= owner.hold_after
                owner.held += hold
            if hold:  # a server that stops answering: the call waits until the server stops
                owner._stop.wait()
                return
        if owner.fail_after is not None:
            with owner._lock:
                failing = owner._served_ok >= owner.fail_after[0]
            if failing:
                status = owner.fail_after[1]
                self._send_json(
                    status,
                    {
                        "error": {
                            "message": f"injected fault {status} after {owner.fail_after[0]} calls",
                            "type": "fake",
                            "code": "invalid_api_key" if status == 401 else None,
                        }
                    },
                )
                return
        refused = sorted(set(owner.reject_params) & set(body))
        if refused:
            name = refused[0]
            self._send_json(
                400,
                {
                    "error": {
                        "message": f"Unsupported parameter: '{name}' is not supported with this model.",
                        "type": "invalid_request_error",
                        "param": name,
                        "code": "unsupported_parameter",
                    }
                },
            )
            return

        if fault:
            if fault.get("stall_s"):
                owner._stop.wait(float(fault["stall_s"]))
            if fault.get("trickle_s"):
                self._trickle(body, float(fault["trickle_s"]))
                return
            if "body" in fault:
                self._send(int(fault.get("status", 200)), str(fault["body"]).encode("utf-8"), "text/plain")
                return
            status = int(fault.get("status", 200))
            if status != 200:
                extra = {}
                if fault.get("retry_after") is not None:
                    extra["Retry-After"] = str(fault["retry_after"])
                if fault.get("retry_after_ms") is not None:
                    extra["retry-after-ms"] = str(fault["retry_after_ms"])
                error = fault.get("error") or {"message": f"injected fault {status}", "type": "fake"}
                if fault.get("echo_headers") or owner.echo_headers:  # a server that repeats what it was sent
                    error = {**error, "message": f"{error.get('message', '')}; request headers: {json.dumps(dict(self.headers.items()))}"}
                self._send_json(status, {"error": error}, extra)
                return
            if fault.get("no_choices"):
                self._send_json(
                    200,
                    {
                        "id": "fake",
                        "object": "chat.completion",
                        "model": "fake-judge",
                        "usage": {"prompt_tokens": 1, "completion_tokens": 0},
                    },
                )
                return

        try:
            # the judge preflight's check call is answered here, so a responder only sees real calls
            reply = "OK" if prompt_text(body).startswith(PREFLIGHT_PROMPT) else owner.responder(body)
        except Exception as exc:  # a broken responder is a server error
            self._send_json(500, {"error": {"message": f"responder failed: {type(exc).__name__}"}})
            return
        if isinstance(reply, dict):  # the responder answers this request with an error: {"status", "error"}
            self._send_json(int(reply.get("status", 400)), {"error": reply.get("error") or {"message": "refused", "type": "fake"}})
            return
        with owner._lock:
            owner._served_ok += 1
        if owner.reply_bytes and len(reply.encode("utf-8")) < owner.reply_bytes:  # a long reply, the verdict at its end
            reply = "x" * (owner.reply_bytes - len(reply.encode("utf-8")) - 1) + " " + reply
        payload = completion(body, reply, fingerprint=owner.fingerprint, n=owner.chat_calls)
        if owner.model_from_header:  # a server that puts a request header in the reply's model field
            payload["model"] = self.headers.get(owner.model_from_header, "")
        self._send_json(200, payload, limit_headers or None)

    def _trickle(self, body: dict, every_s: float) -> None:
        """A 200 reply whose body arrives one byte every ``every_s`` seconds (until the client gives up)."""
        payload = json.dumps(completion(body, "trickled", fingerprint=None)).encode("utf-8")
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.flush()
            for i in range(len(payload)):
                if self.owner._stop.wait(every_s):
                    break
                self.wfile.write(payload[i : i + 1])
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog (5) drops SYNs under a burst of concurrent connects


class FakeOpenAIServer:
    """Threaded fake of ``/v1/chat/completions`` and ``/v1/models`` on 127.0.0.1.

    The ``responder`` gives the assistant text for a request body, or a dict ``{"status": 400,
    "error": {...}}`` to answer that request with an error (a content filter, say).

    ``faults`` is consumed in order, one entry per incoming chat request; each entry is
    ``None`` (serve normally) or a dict such as ``{"status": 429, "retry_after": 1}``,
    ``{"status": 500}``, ``{"stall_s": 5.0}``, ``{"body": "not json"}`` (optionally with
    ``"status"``), ``{"status": 200, "no_choices": True}``.  Once the list is used up,
    ``fault_every=N`` applies ``periodic_fault`` (default ``{"status": 500}``) to every
    Nth chat request (1-based count of all chat requests).

    Fault entries may also carry ``"retry_after_ms"`` and ``"echo_headers": True`` (the error body
    repeats the request's headers, as a careless server does). ``rate_per_min`` puts a token bucket
    in front (``burst`` calls, default one second's worth; refused calls get 429 with ``Retry-After``,
    ``retry-after-ms`` unless ``retry_after_ms=False``, and OpenAI's ``x-ratelimit-*-requests`` on
    every reply unless ``ratelimit_headers=False``; ``accepted``/``rejected`` count them).
    ``echo_headers=True`` echoes in every error, ``model_from_header="Authorization"`` puts that
    request header in each reply's ``model`` field, ``reply_bytes=N`` pads replies to N bytes (the
    verdict at the end).

    Every chat request body is kept in ``requests`` (with its headers under ``"_headers"`` and the
    path as sent, query included, under ``"_path"``);
    ``keep_images=False`` stores image data URLs as ``data:<mime>;base64,<N bytes>`` instead of
    the image itself (photo-sized images make that 2.5 MB per call). ``drop_connections=True``
    closes every connection after one reply without a ``Connection: close`` header, as a server
    whose keep-alive timeout is shorter than the client's idle time; ``connections`` counts the
    connections accepted.
    """

    def __init__(
        self,
        responder: Callable[[dict], str] | None = None,
        latency_s: float = 0.0,
        faults: list | None = None,
        require_key: str | None = None,
        fault_every: int | None = None,
        periodic_fault: dict | None = None,
        port: int = 0,
        keep_images: bool = True,
        drop_connections: bool = False,
        reject_params: tuple = (),
        fail_after: tuple | None = None,
        rate_per_min: float | None = None,
        fingerprint: str | None = None,
        hold_after: int | None = None,
        burst: float | None = None,
        retry_after_ms: bool = True,
        ratelimit_headers: bool = True,
        echo_headers: bool = False,
        model_from_header: str | None = None,
        reply_bytes: int | None = None,
    ):
        self.responder = responder or default_responder
        self.latency_s = float(latency_s)
        self.faults = list(faults or [])
        self.require_key = require_key
        self.fault_every = int(fault_every) if fault_every else 0
        self.periodic_fault = dict(periodic_fault) if periodic_fault else {"status": 500}
        self.port = int(port)
        self.keep_images = bool(keep_images)
        self.drop_connections = bool(drop_connections)
        self.reject_params = tuple(reject_params)  # 400 "Unsupported parameter" when a body carries one
        self.fail_after = fail_after  # (n, status): every chat call after n successful ones gets status
        self.rate_per_min = rate_per_min  # a token bucket of N calls a minute; others get 429 + Retry-After
        self.fingerprint = fingerprint  # system_fingerprint of the replies
        self.hold_after = hold_after  # after n successful chat calls, later ones get no reply until stop()
        self.burst = burst  # the token bucket's capacity (default: one second of calls, at least one)
        self.retry_after_ms = retry_after_ms  # a 429 of the bucket carries retry-after-ms (as OpenAI's do)
        self.ratelimit_headers = ratelimit_headers  # every reply carries x-ratelimit-{limit,remaining,reset}-requests
        self.echo_headers = echo_headers  # error bodies repeat the request's headers
        self.model_from_header = model_from_header  # the reply's "model" is this request header's value
        self.reply_bytes = reply_bytes  # replies padded to this many bytes (the verdict at the end)
        self.accepted = 0  # chat calls the token bucket let through
        self.rejected = 0  # chat calls it answered 429
        self.held = 0  # chat calls being held
        self._served_ok = 0
        self._tokens = 0.0
        self._bucket_at: float | None = None
        self.requests: list[dict] = []
        self.chat_calls = 0
        self.connections = 0
        self.faults_served = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- fault bookkeeping (called by the handler)
    def _next_fault(self, body: dict, headers: dict, path: str | None = None) -> dict | None:
        with self._lock:
            self.chat_calls += 1
            n = self.chat_calls
            record = dict(body) if self.keep_images else _without_images(body)
            record["_headers"] = headers
            record["_path"] = path  # as sent: path and query
            self.requests.append(record)
            fault = None
            if self.faults:
                fault = self.faults.pop(0)
            elif self.fault_every and n % self.fault_every == 0:
                fault = dict(self.periodic_fault)
            if fault:
                self.faults_served += 1
            return fault

    def _admit(self) -> tuple:
        """Token bucket: ``rate_per_min`` a minute, holding ``burst`` calls (default one second of calls,
        at least one), full at start. ``(0, headers)`` when a call may go now (it takes a token), else
        ``(seconds until the next token, headers)``; headers: OpenAI's ``x-ratelimit-*-requests``."""
        rate = float(self.rate_per_min) / 60.0
        capacity = float(self.burst) if self.burst else max(1.0, rate)
        with self._lock:
            now = time.monotonic()
            if self._bucket_at is None:
                self._tokens, self._bucket_at = capacity, now
            self._tokens = min(capacity, self._tokens + (now - self._bucket_at) * rate)
            self._bucket_at = now
            wait = 0.0
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self.accepted += 1
            else:
                wait = (1.0 - self._tokens) / rate
                self.rejected += 1
            headers = {}
            if self.ratelimit_headers:
                headers = {
                    "x-ratelimit-limit-requests": f"{self.rate_per_min:g}",
                    "x-ratelimit-remaining-requests": str(int(self._tokens)),
                    "x-ratelimit-reset-requests": f"{(capacity - self._tokens) / rate * 1000:.0f}ms",
                }
            return wait, headers

    # -- lifecycle
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"owner": self})
        httpd = _Server(("127.0.0.1", self.port), handler)
        httpd.daemon_threads = True
        self._stop.clear()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        self._stop.set()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Block until KeyboardInterrupt (for ``python -m siuo_dev.fake_judge_server``)."""
        self.start()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m siuo_dev.fake_judge_server", description="Fake OpenAI-compatible server on 127.0.0.1 (for tests and dry runs)."
    )
    ap.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each chat reply")
    ap.add_argument("--require-key", default=None, help="answer 401 unless this API key is sent")
    ap.add_argument("--fault-every", type=int, default=0, help="answer HTTP 500 on every Nth chat request")
    args = ap.parse_args(argv)
    server = FakeOpenAIServer(
        latency_s=args.latency, require_key=args.require_key, fault_every=args.fault_every or None, port=args.port
    ).start()
    print(server.url, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
