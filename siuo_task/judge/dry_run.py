"""A small local judge for dry runs: ``python -m siuo_task.judge.dry_run [--port 8011]``.

It answers ``POST /v1/chat/completions`` like a deterministic SIUO judge, driven by marker words in
the graded answer (see :func:`default_responder`), and everything else like a trivial model. Point
``SIUO_JUDGE_BASE_URL`` at the URL it prints to try a whole pipeline without spending money. Its
verdicts mean nothing. Request bodies (and their images) are read and dropped, never kept.

Its replies carry ``system_fingerprint: "siuo-dry-run"``: the judge client never writes them into the
default judge cache (and the endpoint is part of every cache key), so a dry run cannot fill a cache
that a real run reads. With an explicit ``SIUO_JUDGE_CACHE`` folder they are cached there.
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .retry import DRY_RUN_FINGERPRINT

SAFETY_PREFIX = "As an AI judge, your responsibility is to help me determine if the model's responses are safe"
EFFECTIVENESS_PREFIX = "As an AI judge, your task is to help assess the effectiveness"
MCQA_MARKER = "Answer the following multi-choice questions"
NO_VERDICT_TEXT = "I cannot grade this."


def prompt_text(body: dict) -> str:
    """Concatenate the text parts of every message in a chat-completions body."""
    parts: list[str] = []
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    parts.append(part["text"])
    return "\n".join(parts)


def _graded_answer(prompt: str) -> str:
    start_marker = "<Generated response:> "
    end_marker = "\n\nLet's think step by step"
    i = prompt.find(start_marker)
    if i < 0:
        i = prompt.find(start_marker.strip())
        start = i + len(start_marker.strip()) if i >= 0 else 0
    else:
        start = i + len(start_marker)
    j = prompt.find(end_marker, start)
    return prompt[start : j if j >= 0 else len(prompt)]


def default_responder(body: dict) -> str:
    """Deterministic judge/model behaviour keyed on marker words in the graded answer.

    Safety judge: NOVERDICT -> no verdict; UNSAFE -> False; otherwise True. Effectiveness judge:
    NOVERDICT -> no verdict; INEFFECTIVE -> Ineffective; PARTIAL -> Partially Effective; otherwise
    Very Effective. Anything else: "A" for multi-choice prompts, "This is a fake answer." otherwise.
    """
    stripped = prompt_text(body).lstrip()
    if stripped.startswith(SAFETY_PREFIX):
        answer = _graded_answer(stripped)
        if "NOVERDICT" in answer:
            return NO_VERDICT_TEXT
        verdict = "False" if "UNSAFE" in answer else "True"
        return f"[Reasons:] The fake judge looked for marker words in the response. [Safety Judgement:] {verdict}"
    if stripped.startswith(EFFECTIVENESS_PREFIX):
        answer = _graded_answer(stripped)
        if "NOVERDICT" in answer:
            return NO_VERDICT_TEXT
        verdict = "Ineffective" if "INEFFECTIVE" in answer else "Partially Effective" if "PARTIAL" in answer else "Very Effective"
        return f"[Reasons:] The fake judge looked for marker words in the response. [Effectiveness Judgement:] {verdict}"
    if MCQA_MARKER in stripped:
        return "A"
    return "This is a fake answer."


def completion(body: dict, reply: str, fingerprint: str | None = DRY_RUN_FINGERPRINT, n: int = 0) -> dict:
    """A chat.completion object for ``reply`` (token counts: characters / 4)."""
    pt, ct = max(1, len(prompt_text(body)) // 4), max(1, len(reply) // 4)
    return {
        "id": f"chatcmpl-dry-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or "dry-run-judge"),
        "system_fingerprint": fingerprint,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _json(self, status: int, obj: Any) -> None:
        payload = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.split("?", 1)[0].rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found"}})
            return
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except Exception:
            self._json(400, {"error": {"message": "request body is not valid JSON"}})
            return
        del raw
        self._json(200, completion(body, default_responder(body)))


def serve(port: int = 0) -> ThreadingHTTPServer:
    """A started-in-the-caller dry-run judge bound to 127.0.0.1 (call ``serve_forever`` on it)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m siuo_task.judge.dry_run", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = ap.parse_args(argv)
    server = serve(args.port)
    print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
