"""The judge's transport: openai SDK clients for an :class:`~.endpoint.Endpoint` (``AsyncOpenAI``,
``AsyncAzureOpenAI`` for Azure's deployments API), with the key in the one header its API
expects, and the one event-loop thread every SDK call of a judge client runs on.

The SDK's HTTP client honours ``HTTP(S)_PROXY``/``NO_PROXY``/``SSL_CERT_FILE`` (``trust_env``) and
follows redirects. Importing this module does not import the SDK.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from siuo_task import __version__

from .endpoint import Endpoint
from .errors import JudgeUnavailable

USER_AGENT = f"siuo-task/{__version__}"


class EventLoop:
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


def check_usable(endpoint: Endpoint) -> None:
    """Raise :class:`JudgeUnavailable` naming the setting when the endpoint's URL cannot be used."""
    if endpoint.problem:
        raise JudgeUnavailable(f"SIUO judge: {endpoint.problem}; fix SIUO_JUDGE_BASE_URL")


def make_sdk(endpoint: Endpoint, timeout_s: float):
    """``(SDK client, extra headers for every call)`` for ``endpoint``, with the key in the one header
    its API expects and no other credential."""
    import openai  # lazy: importing the SDK takes a while

    omit = getattr(openai, "Omit", None)
    if omit is None:  # exported from 2.x on; 1.x keeps it in _types
        from openai._types import Omit as omit
    key = endpoint.key
    # max_retries=0: the retries are ours (see the client's _send): Retry-After capped and bounded in
    # total per call, the waits shown in the progress bar and the log, fatal errors told apart. The
    # SDK's own retries would wait silently (up to 60 s a time) and count nowhere.
    common: dict = {"max_retries": 0, "timeout": timeout_s}
    if endpoint.query:
        common["default_query"] = dict(endpoint.query)
    headers: dict = {"User-Agent": USER_AGENT}
    if endpoint.kind != "openai":
        # Organisation/project ids from OPENAI_ORG_ID/OPENAI_PROJECT_ID belong to OpenAI only.
        headers["OpenAI-Organization"] = omit()
        headers["OpenAI-Project"] = omit()
    if endpoint.azure_deployments:
        if not key:
            raise JudgeUnavailable(f"SIUO judge: no API key for {endpoint.host}. Set SIUO_JUDGE_API_KEY.")
        headers["Authorization"] = omit()
        extra = {k: v for k, v in headers.items() if isinstance(v, omit)}
        return openai.AsyncAzureOpenAI(api_key=key, base_url=endpoint.url, api_version=endpoint.api_version,
                                       default_headers=headers, **common), extra
    if endpoint.auth_header == "api-key":  # Azure's OpenAI-style v1 API: api-key header, no Authorization
        headers["api-key"] = key
        headers["Authorization"] = omit()
    elif endpoint.auth_header is None:
        headers["Authorization"] = omit()  # a server without a key gets no auth header
    # The SDK falls back to OPENAI_API_KEY when api_key is None: always pass one explicitly. Without
    # a Bearer key the value is a placeholder whose header is omitted above.
    sdk_key = key if endpoint.auth_header == "Authorization" else "no-key"
    extra = {k: v for k, v in headers.items() if isinstance(v, omit)}
    return openai.AsyncOpenAI(api_key=sdk_key, base_url=endpoint.url, default_headers=headers, **common), extra


async def send(sdk, extra_headers: dict, model: str, messages: list, params: dict, timeout_s: float):
    """One chat-completions call; the reply as the raw HTTP response (raises the SDK's errors).

    The messages and every decoding parameter go through ``extra_body``, exactly as built by the
    caller, and the reply is read as plain JSON: the SDK's per-call type transform of the message
    list and its model construction of the reply cost several times the CPU of the rest of a call
    (benchmarks/judge_throughput.py), and older SDKs of the range lack some named arguments.
    Transport, auth, proxies, TLS, redirects and error classes stay the SDK's.
    """
    create = sdk.chat.completions.with_raw_response.create(
        model=model, messages=[], extra_body={"messages": messages, **params}, extra_headers=extra_headers,
    )
    raw = await asyncio.wait_for(create, timeout=timeout_s)
    return raw.http_response
