"""The judge endpoint, resolved once: which API it is (OpenAI, Azure, any other OpenAI-compatible
server), the URL requests go to, the header the key travels in, the Azure API version, and which
setting each of them came from.

:func:`resolve` is the one place that reads a base URL and a key and decides; the config, the
transport and ``siuo doctor`` read the resulting :class:`Endpoint` and never derive the kind again.
Where a URL or key comes from is a list of *sources* (:data:`URL_SOURCES`): each names the variable
it reads and the key variables that may go with its URL (key scoping): SIUO's own ``SIUO_JUDGE_*``
first, then lmms-eval's judge variables (:mod:`.host_vars`: ``OPENAI_API_URL`` with
``OPENAI_API_KEY``, ``AZURE_ENDPOINT`` with ``AZURE_API_KEY``, ``LLM_JUDGE_URL``), then the default.
Another harness's judge variables would be one more entry there. Pure: no network, no SDK import.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from . import host_vars

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_AZURE_API_VERSION = "2024-10-21"

ENV_BASE_URL = "SIUO_JUDGE_BASE_URL"
ENV_KEY = "SIUO_JUDGE_API_KEY"
ENV_OPENAI_KEY = host_vars.OPENAI_API_KEY
ENV_AZURE_API_VERSION = "SIUO_JUDGE_AZURE_API_VERSION"
ARGUMENT = "argument"  # a value given in code or on the command line, not read from a variable

KINDS = ("openai", "azure", "other")
_AZURE_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
INVALID = "<invalid base URL>"
MIN_SECRET_CHARS = 4  # shorter values are redacted by form (Bearer, Basic, api-key, user-info), not as substrings


# --------------------------------------------------------------------------- URL helpers


def _hostname(base_url: str) -> str:
    try:
        return (urlsplit(base_url.strip()).hostname or "").lower()
    except ValueError:
        return ""


def is_openai_api(base_url: str) -> bool:
    """OpenAI's own API (https://api.openai.com, or a data-residency host such as eu.api.openai.com)."""
    try:
        scheme = urlsplit(base_url.strip()).scheme.lower()
    except ValueError:
        return False
    host = _hostname(base_url)
    return scheme == "https" and (host == "api.openai.com" or host.endswith(".api.openai.com"))


def is_azure(base_url: str) -> bool:
    """An Azure OpenAI / AI Foundry endpoint: the key goes in the ``api-key`` header."""
    return _hostname(base_url).endswith(_AZURE_SUFFIXES)


def kind_of(base_url: str) -> str:
    """``openai``, ``azure`` or ``other`` (any other OpenAI-compatible server: vLLM, SGLang, a gateway)."""
    return "openai" if is_openai_api(base_url) else "azure" if is_azure(base_url) else "other"


def _host_port(parts) -> str:
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != {"http": 80, "https": 443}.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return host


def normalized_endpoint(base_url: str) -> str:
    """``scheme://host[:port]/path[?query]``: lower-case scheme and host, no credentials, no default
    port, no trailing slash, sorted query. Two spellings of one endpoint give one string (the
    endpoint part of every cache key)."""
    parts = urlsplit(base_url.strip())
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return urlunsplit((parts.scheme.lower(), _host_port(parts), parts.path.rstrip("/"), query, ""))


def without_query(url: str) -> str:
    """``url`` as :func:`normalized_endpoint` spells it, without the query (nor any credentials)."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), _host_port(parts), parts.path.rstrip("/"), "", ""))


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class UrlSource:
    """One place a judge URL can come from, and the key variables that may be sent to that URL.

    ``read(env)`` gives the URL (or None when this source names none); ``keys(env, url)`` lists, in
    order, the variables whose key may go to it. The first source that names a URL wins; its first
    key variable that is set gives the key. ``kind`` is the API the source's URL speaks whatever its
    host (``"azure"`` for lmms-eval's ``AZURE_ENDPOINT``), None: decided by the host.
    """

    name: str
    read: Callable[[Mapping[str, str]], str | None]
    keys: Callable[[Mapping[str, str], str], tuple]
    kind: str | None = None


def _under(url: str, base: str) -> bool:
    """``url`` is ``base`` or below it (path boundary; scheme, host and port as normalised)."""
    try:
        url, base = without_query(url), without_query(base)
    except ValueError:
        return False
    return url == base or url.startswith(base + "/")


def paired_keys(env: Mapping[str, str], url: str) -> tuple:
    """lmms-eval's key variables that may go to ``url``, as the user paired them: ``OPENAI_API_KEY``
    with ``OPENAI_API_URL`` when that is set, otherwise only with OpenAI's own API;
    ``AZURE_API_KEY`` only with ``AZURE_ENDPOINT`` (that endpoint or below it)."""
    found = []
    openai_base = host_vars.openai_url(env)
    if _under(url, openai_base) if openai_base is not None else is_openai_api(url):
        found.append(ENV_OPENAI_KEY)
    azure_base = host_vars.value(env, host_vars.AZURE_ENDPOINT)
    if azure_base is not None and _under(url, azure_base):
        found.append(host_vars.AZURE_API_KEY)
    return tuple(found)


def _siuo_keys(env: Mapping[str, str], url: str) -> tuple:
    # SIUO_JUDGE_API_KEY is the judge's own key, for whatever endpoint the judge settings name;
    # lmms-eval's keys only where the user paired them (OPENAI_API_KEY: OpenAI's own API by default).
    return (ENV_KEY, *paired_keys(env, url))


def _lmms_eval(types: tuple, reader: Callable[[Mapping[str, str]], str | None]):
    def read(env: Mapping[str, str]) -> str | None:
        return reader(env) if host_vars.api_type(env) in types else None

    return read


def _azure_endpoint(env: Mapping[str, str]) -> str | None:
    if host_vars.api_type(env) not in host_vars.AZURE_TYPES:
        return None
    url = host_vars.azure_url(env)
    if url is None:
        raise ValueError(
            f"SIUO judge: {host_vars.named(env, host_vars.API_TYPE)} is azure, as lmms-eval reads it, but AZURE_ENDPOINT is "
            "not set: set AZURE_ENDPOINT and AZURE_API_KEY (lmms-eval's judged tasks need them too), or SIUO_JUDGE_BASE_URL"
        )
    return url


def _no_key(env: Mapping[str, str], url: str) -> tuple:
    return ()


URL_SOURCES: tuple = (
    # SIUO's own settings first
    UrlSource(ENV_BASE_URL, lambda env: host_vars.value(env, ENV_BASE_URL), _siuo_keys),
    # SIUO_JUDGE_API_KEY without SIUO_JUDGE_BASE_URL has always named OpenAI's API
    UrlSource("default", lambda env: DEFAULT_BASE_URL if host_vars.value(env, ENV_KEY) else None, _siuo_keys),
    # then lmms-eval's judge variables, as its llm_judge reads them (see .host_vars)
    UrlSource(host_vars.OPENAI_API_URL, _lmms_eval(host_vars.OPENAI_TYPES, host_vars.openai_url), lambda env, url: (ENV_OPENAI_KEY,)),
    UrlSource(host_vars.AZURE_ENDPOINT, _azure_endpoint, lambda env, url: (host_vars.AZURE_API_KEY,), kind="azure"),
    UrlSource(
        host_vars.LLM_JUDGE_URL,
        _lmms_eval(host_vars.LOCAL_TYPES, lambda env: host_vars.value(env, host_vars.LLM_JUDGE_URL) and host_vars.local_url(env)),
        _no_key,
    ),
    UrlSource(host_vars.LOCAL_DEFAULT_SOURCE, _lmms_eval(host_vars.LOCAL_TYPES, host_vars.local_url), _no_key),
    # then the default: OpenAI's API, with OPENAI_API_KEY unless the user paired that key with another URL
    UrlSource("default", lambda env: DEFAULT_BASE_URL, paired_keys),
)


@dataclass(frozen=True)
class Settings:
    """Where the endpoint's URL and key come from: the URL and the setting it came from, the key and
    the variable it came from (None: no key), the API the URL speaks when its source says so."""

    url: str
    url_source: str
    key: str | None = field(default=None, repr=False)
    key_source: str | None = None
    kind: str | None = None


def resolve_settings(environ: Mapping[str, str] | None = None, *, base_url: str | None = None, api_key: str | None = None) -> Settings:
    """The URL and key from the arguments (which win) and then the sources in :data:`URL_SOURCES`,
    with the key scoped to the URL chosen. ``environ`` defaults to :func:`.host_vars.judge_environ`
    (the process environment over lmms-eval's ``.env``); a variable read from that file is named
    ``NAME (.env)``. Raises ValueError for lmms-eval variables that name no usable judge."""
    env = host_vars.judge_environ() if environ is None else environ
    kind = None
    if base_url is not None:
        url, url_source = base_url, ARGUMENT
        keys = _siuo_keys(env, url)
    else:
        for source in URL_SOURCES:
            url = source.read(env)
            if url is not None:
                url_source, keys, kind = host_vars.named(env, source.name), source.keys(env, url), source.kind
                break
    if api_key:
        return Settings(url, url_source, api_key, ARGUMENT, kind)
    for name in keys:
        if (value := host_vars.value(env, name)) is not None:
            return Settings(url, url_source, value, host_vars.named(env, name), kind)
    return Settings(url, url_source, None, None, kind)


def scoped_key(base_url: str) -> tuple:
    """``(key, variable it came from)`` for ``base_url``: ``SIUO_JUDGE_API_KEY`` first; lmms-eval's
    keys only where the user paired them (``OPENAI_API_KEY``: ``OPENAI_API_URL``, else OpenAI's own
    API), so a key never travels to another host."""
    found = resolve_settings(base_url=base_url)
    return found.key, found.key_source


# --------------------------------------------------------------------------- the endpoint


@dataclass(frozen=True)
class Endpoint:
    """A judge endpoint, resolved (see :func:`resolve`). Its repr carries no key and no query."""

    kind: str  # "openai", "azure" or "other"
    url: str  # scheme://host[:port]/path: no credentials, no query, no trailing slash (INVALID when unusable)
    host: str  # host[:port]
    cache_identity: str  # the endpoint part of the cache key (see normalized_endpoint)
    auth_header: str | None  # "Authorization" (Bearer or Basic), "api-key" (Azure) or None (no key sent)
    key_source: str | None  # the variable the key came from, ARGUMENT, "<url source> user-info", or None
    url_source: str | None  # the variable the URL came from, ARGUMENT, or "default"
    azure_deployments: bool = False  # Azure's deployments API (AsyncAzureOpenAI), not its OpenAI-style v1 API
    api_version: str | None = None  # Azure deployments API only
    api_version_source: str | None = None  # "base URL", the variable, or "default"
    query: tuple = field(default=(), repr=False)  # (name, value) pairs sent with every request (may hold a token)
    key: str | None = field(default=None, repr=False)  # never printed
    problem: str | None = None  # why the URL cannot be used (the client raises it when started)
    userinfo: tuple = field(default=(), repr=False)  # (user, password) from the URL: sent as Basic auth
    extra_secrets: tuple = field(default=(), repr=False)  # other forms of the credentials, for redaction

    @property
    def basic_auth(self) -> str | None:
        """``Basic <base64 user:password>`` when the URL carries user-info, else None."""
        if not self.userinfo:
            return None
        return "Basic " + base64.b64encode(f"{self.userinfo[0]}:{self.userinfo[1]}".encode()).decode("ascii")

    def secrets(self) -> tuple:
        """Every credential of this endpoint in every form it could be echoed in (the key, the URL's
        user-info raw, decoded and as Basic auth, query values other than api-version): for redaction."""
        found = [self.key] if self.key else []
        found += list(self.extra_secrets)
        found += [v for k, v in self.query if k.lower() != "api-version" and len(v) >= MIN_SECRET_CHARS]
        return tuple(dict.fromkeys(s for s in found if s))

    @property
    def described(self) -> str:
        """The endpoint in words, with where its URL came from (for doctor and logs; no credentials)."""
        api = {"openai": "OpenAI's API", "other": "an OpenAI-compatible server"}.get(self.kind)
        if api is None:
            api = (
                f"Azure's deployments API, api-version {self.api_version} ({self.api_version_source})"
                if self.azure_deployments
                else "Azure's OpenAI-style API"
            )
        origin = "the default" if self.url_source == "default" else f"from {self.url_source}"
        return f"{self.host} ({api}; URL {origin})"

    @property
    def auth(self) -> str:
        """How the key travels, in words (never the key): for doctor and logs."""
        if self.auth_header is None:
            return "no key"
        if self.userinfo:
            return f"Basic auth from the user-info of {self.url_source} (Authorization: Basic)"
        how = "the api-key header" if self.auth_header == "api-key" else "Authorization: Bearer"
        return f"the key from {self.key_source} in {how}"


def resolve(
    base_url: str,
    api_key: str | None = None,
    *,
    key_source: str | None = None,
    url_source: str | None = None,
    azure_api_version: str | None = None,
    api_version_source: str | None = None,
    kind: str | None = None,
) -> Endpoint:
    """The :class:`Endpoint` for ``base_url`` and its key. Never raises for a bad URL: the endpoint
    then carries a ``problem`` (the client raises it, naming the setting, when it starts).

    ``kind="azure"``: the URL speaks Azure's API whatever its host (lmms-eval's ``AZURE_ENDPOINT``
    behind a gateway: the key in ``api-key``, the deployments API when the URL ends in ``/openai``
    or names a deployment); None: the host decides.

    Credentials in the URL (``http://user:pass@host/v1``) are sent as Basic auth - the one credential
    of that endpoint - and never appear in its ``url``: a URL with credentials and a key as well, or
    with credentials for OpenAI's or Azure's API (which take a key), raises ``ValueError``.
    """
    raw = base_url.strip()
    key = api_key or None
    key_source = (key_source or ARGUMENT) if key else None
    try:
        parts = urlsplit(raw)
        scheme, hostname = parts.scheme.lower(), parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return Endpoint("other", INVALID, INVALID, INVALID, None, key_source, url_source, key=key, problem=f"invalid base URL ({exc})")
    if kind not in (None, "azure"):
        raise ValueError(f"resolve: kind must be None or 'azure', got {kind!r}")
    kind = kind or kind_of(raw)
    where = url_source if url_source not in (None, ARGUMENT, "default") else "the base URL"
    userinfo, extra = (), ()
    if "@" in parts.netloc:
        raw_info = parts.netloc.rpartition("@")[0]
        user, _, password = raw_info.partition(":")
        userinfo = (unquote(user), unquote(password))
        plain = f"{userinfo[0]}:{userinfo[1]}"
        extra = tuple(
            v
            for v in (raw_info, plain, password, userinfo[1], base64.b64encode(plain.encode()).decode("ascii"))
            if len(v) >= MIN_SECRET_CHARS
        )
        if key:
            raise ValueError(
                f"SIUO judge: {where} carries credentials (user-info, user:password@) and an API key is set as well "
                f"({key_source}): the endpoint would get two credentials. Keep one: remove the user-info from the URL, "
                f"or unset {key_source if key_source != ARGUMENT else 'the key'}."
            )
        if kind != "other":
            raise ValueError(
                f"SIUO judge: {where} carries credentials (user-info, user:password@), but {'OpenAI' if kind == 'openai' else 'Azure'}'s "
                "API takes an API key: remove them from the URL and set SIUO_JUDGE_API_KEY."
            )
        key_source = f"{url_source or ARGUMENT} user-info"
    problem = None
    if scheme not in ("http", "https"):
        problem = f"unsupported URL scheme {scheme!r} in the base URL (use http or https)"
    elif not hostname:
        problem = "the base URL has no host"
    host = _host_port(parts) if hostname else INVALID
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    path = parts.path.rstrip("/")
    deployments = kind == "azure" and ("/deployments" in parts.path or path.endswith("/openai"))
    version = version_source = None
    if deployments:
        given = [v for k, v in query if k == "api-version"]
        query = tuple((k, v) for k, v in query if k != "api-version")
        if given:
            version, version_source = given[0], "base URL"
        elif azure_api_version:
            version, version_source = azure_api_version, api_version_source or ARGUMENT
        else:
            version, version_source = DEFAULT_AZURE_API_VERSION, "default"
    auth_header = None if not (key or userinfo) else "api-key" if kind == "azure" else "Authorization"
    return Endpoint(
        kind=kind,
        url=without_query(raw) if hostname else INVALID,
        host=host,
        cache_identity=normalized_endpoint(raw),
        auth_header=auth_header,
        key_source=key_source,
        url_source=url_source,
        azure_deployments=deployments,
        api_version=version,
        api_version_source=version_source,
        query=query,
        key=key,
        problem=problem,
        userinfo=userinfo,
        extra_secrets=extra,
    )
