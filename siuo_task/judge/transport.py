"""The judge's transport: openai SDK clients for an :class:`~.endpoint.Endpoint` (``AsyncOpenAI``,
``AsyncAzureOpenAI`` for Azure's deployments API) with the key in the one header its API expects,
the proxy a call goes through, and the one event-loop thread every SDK call of a client runs on.

HTTP goes through the SDK's aiohttp transport (``DefaultAioHttpClient``) where the SDK has it and
aiohttp is installed (lmms-eval depends on it), else through the SDK's httpx transport
(``SIUO_JUDGE_TRANSPORT`` chooses). Either way the SDK's HTTP client decides proxies
(``HTTP(S)_PROXY``/``NO_PROXY``), TLS (``SSL_CERT_FILE``) and redirects; a redirect to another host
never carries the key. Importing this module does not import the SDK.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from siuo_task import __version__

from .endpoint import MIN_SECRET_CHARS, Endpoint
from .errors import JudgeUnavailable

USER_AGENT = f"siuo-task/{__version__}"
TRANSPORTS = ("auto", "aiohttp", "httpx")
_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"  # the SDK returns the raw HTTP response (its with_raw_response)
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


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


_preload_lock = threading.Lock()
_preloaded: list = []


def preload() -> None:
    """Start importing the SDK on a background thread (it takes about half a second), so that the
    import overlaps whatever the caller does before its first call. Idempotent; never raises."""
    with _preload_lock:
        if _preloaded:
            return
        thread = threading.Thread(target=_import_sdk, name="siuo-judge-import", daemon=True)
        _preloaded.append(thread)
        thread.start()


def _import_sdk() -> None:
    try:
        import openai  # noqa: F401
    except Exception:  # the caller's own import names the problem
        pass


# --------------------------------------------------------------------------- proxies


@dataclass(frozen=True)
class Proxy:
    """The proxy a URL goes through: its URL without credentials, the variable naming it, its secrets."""

    url: str
    variable: str
    secrets: tuple = field(default=(), repr=False)

    @property
    def described(self) -> str:
        return f"the proxy {self.url} (from {self.variable})"


def _userinfo_secrets(netloc: str) -> tuple:
    if "@" not in netloc:
        return ()
    raw = netloc.rpartition("@")[0]
    user, _, password = raw.partition(":")
    plain = f"{unquote(user)}:{unquote(password)}"
    forms = (raw, plain, password, unquote(password), base64.b64encode(plain.encode()).decode("ascii"))
    return tuple(v for v in forms if len(v) >= MIN_SECRET_CHARS)


def _proxy_value(environ: Mapping[str, str], name: str) -> tuple:
    """``(value, variable)`` of the proxy variable ``name`` (lower case wins, as urllib and httpx read them)."""
    for variable in (name, name.upper()):
        value = (environ.get(variable) or "").strip()
        if value:
            return value, variable
    return None, None


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy the SDK's HTTP client sends ``url``'s requests through (``HTTP(S)_PROXY``,
    ``ALL_PROXY`` minus ``NO_PROXY``), or None. For naming it in errors; routing is the SDK's."""
    env = os.environ if environ is None else environ
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    no_proxy, _ = _proxy_value(env, "no_proxy")
    if no_proxy and urllib.request.proxy_bypass_environment(host, {"no": no_proxy}):
        return None
    for name in (f"{parts.scheme.lower()}_proxy", "all_proxy"):
        value, variable = _proxy_value(env, name)
        if value:
            full = value if "://" in value else f"http://{value}"
            try:
                p = urlsplit(full)
                shown = urlunsplit((p.scheme, p.netloc.rpartition("@")[2], p.path, "", ""))
            except ValueError:
                shown = "<unparseable proxy URL>"
            return Proxy(shown, variable, _userinfo_secrets(urlsplit(full).netloc))
    return None


def proxy_secrets(environ: Mapping[str, str] | None = None) -> tuple:
    """The credentials in every proxy variable, in every form they could be echoed in (for redaction)."""
    env = os.environ if environ is None else environ
    found: list = []
    for name in _PROXY_VARS:
        for variable in (name, name.upper()):
            value = (env.get(variable) or "").strip()
            if value:
                try:
                    found += _userinfo_secrets(urlsplit(value if "://" in value else f"http://{value}").netloc)
                except ValueError:
                    continue
    return tuple(dict.fromkeys(found))


# --------------------------------------------------------------------------- SDK clients


def check_usable(endpoint: Endpoint) -> None:
    """Raise :class:`JudgeUnavailable` naming the setting when the endpoint's URL cannot be used."""
    if endpoint.problem:
        source = endpoint.url_source if endpoint.url_source not in (None, "default", "argument") else "SIUO_JUDGE_BASE_URL"
        raise JudgeUnavailable(f"SIUO judge: {endpoint.problem}; fix {source}")


def aiohttp_usable() -> bool:
    """Whether the SDK has an aiohttp transport here: ``DefaultAioHttpClient`` (openai >= 1.86), aiohttp,
    and the SDK's bridge to it (vendored in openai 3.x, the ``httpx_aiohttp`` extra before)."""
    import importlib.util

    import openai

    if getattr(openai, "DefaultAioHttpClient", None) is None or importlib.util.find_spec("aiohttp") is None:
        return False
    for bridge in ("openai._vendor.httpx_aiohttp", "httpx_aiohttp"):
        try:
            if importlib.util.find_spec(bridge) is not None:
                return True
        except ModuleNotFoundError:
            continue
    return False


def choose_transport(wanted: str) -> str:
    if wanted == "auto":
        return "aiohttp" if aiohttp_usable() else "httpx"
    if wanted == "aiohttp" and not aiohttp_usable():
        raise JudgeUnavailable(
            "SIUO judge: SIUO_JUDGE_TRANSPORT=aiohttp, but the openai SDK here has no aiohttp transport "
            "(it needs openai >= 1.86 with its aiohttp extra, or aiohttp with openai 3.x); use auto or httpx"
        )
    return wanted


def _key_stays_home(endpoint: Endpoint):
    """A request hook: a request the HTTP client sends to another host than the endpoint's (a
    redirect) carries no credential header (httpx drops Authorization only, not Azure's api-key)."""
    home = urlsplit(endpoint.url).hostname

    async def hook(request) -> None:
        if request.url.host != home:
            for name in ("Authorization", "api-key"):
                if name in request.headers:
                    del request.headers[name]

    return hook


def make_sdk(endpoint: Endpoint, timeout_s: float, transport: str = "httpx"):
    """``(SDK client, extra headers for every call)`` for ``endpoint``, with the key in the one header
    its API expects and no other credential (the URL the SDK gets has no user-info and no query)."""
    import openai  # lazy: importing the SDK takes a while

    omit = getattr(openai, "Omit", None)
    if omit is None:  # exported from 2.x on; 1.x keeps it in _types
        from openai._types import Omit as omit
    key = endpoint.key
    http_class = openai.DefaultAioHttpClient if transport == "aiohttp" else openai.DefaultAsyncHttpxClient
    # max_retries=0: the retries are ours (retry.Caller): Retry-After honoured and bounded, the waits
    # shown in the progress bar and the log, fatal errors told apart. The SDK's own retries would wait
    # silently and count nowhere.
    common: dict = {
        "max_retries": 0,
        "timeout": timeout_s,
        "http_client": http_class(timeout=timeout_s, event_hooks={"request": [_key_stays_home(endpoint)]}),
    }
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
        return openai.AsyncAzureOpenAI(
            api_key=key, base_url=endpoint.url, api_version=endpoint.api_version, default_headers=headers, **common
        ), extra
    if endpoint.auth_header == "api-key":  # Azure's OpenAI-style v1 API: api-key header, no Authorization
        headers["api-key"] = key
        headers["Authorization"] = omit()
    elif endpoint.basic_auth:
        headers["Authorization"] = endpoint.basic_auth  # the URL's user-info, explicitly (never from the URL)
    elif endpoint.auth_header is None:
        headers["Authorization"] = omit()  # a server without a key gets no auth header
    # The SDK falls back to OPENAI_API_KEY when api_key is None: always pass one explicitly. Without
    # a Bearer key the value is a placeholder whose header is omitted or replaced above.
    sdk_key = key if (key and endpoint.auth_header == "Authorization") else "no-key"
    extra = {k: v for k, v in headers.items() if isinstance(v, omit)}
    return openai.AsyncOpenAI(api_key=sdk_key, base_url=endpoint.url, default_headers=headers, **common), extra


async def send(sdk, extra_headers: dict, body: dict, timeout_s: float):
    """One chat-completions call: the raw HTTP response (raises the SDK's errors).

    The body goes as built by the caller (``sdk.post``: the SDK's typed ``chat.completions.create``
    transforms the message list and builds a model of the reply, several times the CPU of the rest
    of a call - benchmarks/judge_throughput.py - and older SDKs of the range lack some arguments).
    Transport, auth, proxies, TLS, redirects and error classes stay the SDK's.
    """
    options = {"headers": {**extra_headers, _RAW_RESPONSE_HEADER: "true"}}
    raw = await asyncio.wait_for(sdk.post("/chat/completions", cast_to=object, body=body, options=options), timeout=timeout_s)
    return raw.http_response


def answering_host(response) -> str:
    """``host[:port]`` of the server that gave ``response`` (after any redirect)."""
    url = response.url
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(url.scheme)
    return f"{host}:{url.port}" if url.port is not None and url.port != default else host
