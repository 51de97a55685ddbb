"""Judge configuration: ``JudgeConfig``, the ``SIUO_JUDGE_*`` variables, which key goes to which
endpoint, and the request shape per judge family. Pure: no network, no SDK import."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_JUDGE_MODEL = "gpt-4o-mini-2024-07-18"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_CACHE_DIR = "~/.cache/siuo_task/judge"
DEFAULT_AZURE_API_VERSION = "2024-10-21"

# Request shapes. "chat": max_tokens + temperature (every OpenAI-compatible server, gpt-4o...).
# "reasoning": max_completion_tokens with room for the hidden reasoning, no temperature, optional
# reasoning_effort (gpt-5*, o1/o3/o4*: they refuse max_tokens and any non-default temperature).
SHAPES = ("chat", "reasoning")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
_REASONING_MODEL_RE = re.compile(r"^(?:gpt-5|o1|o3|o4)(?:$|[-._:])", re.IGNORECASE)

ENV_KEY = "SIUO_JUDGE_API_KEY"
ENV_OPENAI_KEY = "OPENAI_API_KEY"

_AZURE_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")

# --------------------------------------------------------------------------- redaction

_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
_HEADER_KEY_RE = re.compile(r"(?i)((?:api[-_]?key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+")
_SK_RE = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_URL_USERINFO_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^/\s@]+@")


def redact(text: Any, *secrets: str | None) -> str:
    """``text`` with every given secret, bearer token, api-key/authorization value, ``sk-...`` key
    and URL credential (``scheme://user:pass@``) replaced by ``***``."""
    s = "" if text is None else str(text)
    for secret in secrets:
        if secret:
            s = s.replace(secret, "***")
    s = _BEARER_RE.sub(r"\1***", s)
    s = _HEADER_KEY_RE.sub(r"\1***", s)
    s = _SK_RE.sub("sk-***", s)
    s = _URL_USERINFO_RE.sub(r"\1***@", s)
    return s


# --------------------------------------------------------------------------- endpoints


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


def normalized_endpoint(base_url: str) -> str:
    """``scheme://host[:port]/path[?query]``: lower-case scheme and host, no credentials, no default
    port, no trailing slash, sorted query. Two spellings of one endpoint give one string."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return urlunsplit((scheme, host, parts.path.rstrip("/"), query, ""))


def is_reasoning_model(model: str) -> bool:
    """gpt-5*, o1*, o3*, o4* (a provider prefix such as ``openai/`` is ignored)."""
    return bool(_REASONING_MODEL_RE.match(model.strip().rsplit("/", 1)[-1]))


# --------------------------------------------------------------------------- env parsing


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


def _parse_float(name: str, raw: str, minimum: float, strict: bool, maximum: float | None = None) -> float:
    try:
        value = float(raw.strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    bad = value != value or (value <= minimum if strict else value < minimum) or (maximum is not None and value > maximum)
    if bad:
        op = ">" if strict else ">="
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be a number {op} {minimum}{upper}, got {raw!r}")
    return value


def _choice(name: str, raw: str, choices: tuple) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


# --------------------------------------------------------------------------- config


def _is_int(v: Any, minimum: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


@dataclass(frozen=True)
class JudgeConfig:
    model: str = DEFAULT_JUDGE_MODEL
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)  # never printed
    key_source: str | None = None  # "SIUO_JUDGE_API_KEY", "OPENAI_API_KEY", "argument" or None (no key)
    concurrency: int = 16
    temperature: float = 0.0  # "chat" shape only
    max_tokens: int = 200  # "chat" shape only
    request_shape: str = "auto"  # "auto" (by model name), "chat" or "reasoning"
    max_completion_tokens: int = 4096  # "reasoning" shape: the verdict plus room for the hidden reasoning
    reasoning_effort: str | None = None  # "reasoning" shape; None: the provider's default
    timeout_s: float = 120.0  # bound on one whole HTTP request (connect to last byte)
    max_retries: int = 6  # retries after the first try (waits a Retry-After asks for do not count)
    retry_after_cap_s: float = 60.0  # longest single wait a Retry-After may impose
    max_wait_s: float = 300.0  # total waiting (backoff + Retry-After) allowed per call
    cache_dir: str | None = None  # None -> DEFAULT_CACHE_DIR; "" or "off" disables caching
    token_budget: int | None = None  # prompt+completion tokens for uncached calls; None = unlimited
    max_error_rate: float = 0.05  # judge errors above this share of judge calls make the result invalid
    azure_api_version: str | None = None  # Azure deployments URL without ?api-version=

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"JudgeConfig.{what}")

        if not isinstance(self.model, str) or not self.model.strip():
            raise bad("model must be a non-empty string")
        if not isinstance(self.base_url, str) or not self.base_url.strip():
            raise bad("base_url must be a non-empty string")
        for name, minimum in (("concurrency", 1), ("max_tokens", 1), ("max_retries", 0), ("max_completion_tokens", 1)):
            if not _is_int(getattr(self, name), minimum):
                raise bad(f"{name} must be an integer >= {minimum}, got {getattr(self, name)!r}")
        if not _is_num(self.temperature) or self.temperature < 0:
            raise bad(f"temperature must be a number >= 0, got {self.temperature!r}")
        for name in ("timeout_s", "retry_after_cap_s"):
            if not _is_num(getattr(self, name)) or getattr(self, name) <= 0:
                raise bad(f"{name} must be a number > 0, got {getattr(self, name)!r}")
        if not _is_num(self.max_wait_s) or self.max_wait_s < 0:
            raise bad(f"max_wait_s must be a number >= 0, got {self.max_wait_s!r}")
        if not _is_num(self.max_error_rate) or not 0 <= self.max_error_rate <= 1:
            raise bad(f"max_error_rate must be a number in [0, 1], got {self.max_error_rate!r}")
        if self.token_budget is not None and not _is_int(self.token_budget, 1):
            raise bad(f"token_budget must be None or an integer >= 1, got {self.token_budget!r}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise bad(f"cache_dir must be a path string, got {type(self.cache_dir).__name__}")
        if self.request_shape not in ("auto", *SHAPES):
            raise bad(f"request_shape must be auto, chat or reasoning, got {self.request_shape!r}")
        if self.reasoning_effort is not None and self.reasoning_effort not in REASONING_EFFORTS:
            raise bad(f"reasoning_effort must be None or one of {', '.join(REASONING_EFFORTS)}, got {self.reasoning_effort!r}")
        if self.key_source not in (None, ENV_KEY, ENV_OPENAI_KEY, "argument"):
            raise bad(f"key_source must be None, {ENV_KEY}, {ENV_OPENAI_KEY} or 'argument', got {self.key_source!r}")
        if self.api_key and self.key_source is None:
            object.__setattr__(self, "key_source", "argument")
        if not self.api_key:
            object.__setattr__(self, "key_source", None)

    @classmethod
    def from_env(cls, **overrides: Any) -> "JudgeConfig":
        """A config from the ``SIUO_JUDGE_*`` variables; keyword ``overrides`` (field names) win, and
        overrides whose value is ``None`` are ignored (so CLI flags pass straight through).

        Key scoping: ``OPENAI_API_KEY`` is used only when the endpoint is OpenAI's own API; any other
        endpoint gets ``SIUO_JUDGE_API_KEY`` or no key. Bad values raise ``ValueError`` naming the variable.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"JudgeConfig.from_env got unknown field(s): {', '.join(unknown)}")

        kw: dict[str, Any] = {}
        if (v := _env("SIUO_JUDGE_MODEL")) is not None:
            kw["model"] = v
        if (v := _env("SIUO_JUDGE_BASE_URL")) is not None:
            kw["base_url"] = v
        if (v := _env("SIUO_JUDGE_CONCURRENCY")) is not None:
            kw["concurrency"] = _parse_int("SIUO_JUDGE_CONCURRENCY", v, 1)
        if (v := os.environ.get("SIUO_JUDGE_CACHE")) is not None:
            kw["cache_dir"] = v.strip()  # "" / "off" disable
        if (v := _env("SIUO_JUDGE_MAX_TOKENS")) is not None:
            kw["max_tokens"] = _parse_int("SIUO_JUDGE_MAX_TOKENS", v, 1)
        if (v := _env("SIUO_JUDGE_MAX_COMPLETION_TOKENS")) is not None:
            kw["max_completion_tokens"] = _parse_int("SIUO_JUDGE_MAX_COMPLETION_TOKENS", v, 1)
        if (v := _env("SIUO_JUDGE_TEMPERATURE")) is not None:
            kw["temperature"] = _parse_float("SIUO_JUDGE_TEMPERATURE", v, 0.0, strict=False)
        if (v := _env("SIUO_JUDGE_REQUEST_SHAPE")) is not None:
            kw["request_shape"] = _choice("SIUO_JUDGE_REQUEST_SHAPE", v, ("auto", *SHAPES))
        if (v := _env("SIUO_JUDGE_REASONING_EFFORT")) is not None:
            kw["reasoning_effort"] = None if v.lower() == "default" else _choice("SIUO_JUDGE_REASONING_EFFORT", v, REASONING_EFFORTS)
        if (v := _env("SIUO_JUDGE_TOKEN_BUDGET")) is not None:
            kw["token_budget"] = None if v.lower() in ("none", "unlimited", "off") else _parse_int("SIUO_JUDGE_TOKEN_BUDGET", v, 1)
        if (v := _env("SIUO_JUDGE_TIMEOUT")) is not None:
            kw["timeout_s"] = _parse_float("SIUO_JUDGE_TIMEOUT", v, 0.0, strict=True)
        if (v := _env("SIUO_JUDGE_MAX_RETRIES")) is not None:
            kw["max_retries"] = _parse_int("SIUO_JUDGE_MAX_RETRIES", v, 0)
        if (v := _env("SIUO_JUDGE_MAX_WAIT")) is not None:
            kw["max_wait_s"] = _parse_float("SIUO_JUDGE_MAX_WAIT", v, 0.0, strict=False)
        if (v := _env("SIUO_JUDGE_MAX_ERROR_RATE")) is not None:
            kw["max_error_rate"] = _parse_float("SIUO_JUDGE_MAX_ERROR_RATE", v, 0.0, strict=False, maximum=1.0)
        if (v := _env("SIUO_JUDGE_AZURE_API_VERSION")) is not None:
            kw["azure_api_version"] = v

        for name, value in overrides.items():
            if value is not None:
                kw[name] = value
        if overrides.get("api_key"):
            kw["key_source"] = "argument"
        else:
            base_url = kw.get("base_url", DEFAULT_BASE_URL)
            kw["api_key"], kw["key_source"] = scoped_key(base_url)
        return cls(**kw)

    # ------------------------------------------------------------------ derived
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

    @property
    def endpoint(self) -> str:
        """The normalised base URL (no credentials): part of every cache key."""
        try:
            return normalized_endpoint(self.base_url)
        except ValueError:
            return "<invalid base URL>"

    @property
    def azure(self) -> bool:
        return is_azure(self.base_url)

    def initial_shape(self) -> str:
        if self.request_shape != "auto":
            return self.request_shape
        return "reasoning" if is_reasoning_model(self.model) else "chat"

    def shape_params(self, shape: str) -> dict:
        """The decoding parameters of one request shape, exactly as sent."""
        if shape == "chat":
            return {"temperature": float(self.temperature), "max_tokens": int(self.max_tokens)}
        if shape == "reasoning":
            params: dict = {"max_completion_tokens": int(self.max_completion_tokens)}
            if self.reasoning_effort is not None:
                params["reasoning_effort"] = self.reasoning_effort
            return params
        raise ValueError(f"unknown request shape {shape!r}")

    def decoding(self, shape: str | None = None) -> dict:
        return self.shape_params(shape or self.initial_shape())

    @property
    def resolved_cache_dir(self) -> Path | None:
        """The cache directory actually used, or None when caching is off."""
        if self.cache_dir is None:
            return Path(os.path.expanduser(DEFAULT_CACHE_DIR))
        raw = os.fspath(self.cache_dir).strip()
        if raw == "" or raw.lower() == "off":
            return None
        return Path(os.path.expanduser(raw))

    @property
    def default_cache(self) -> bool:
        """True when the cache is the default folder (nobody chose one)."""
        return self.cache_dir is None


def scoped_key(base_url: str) -> tuple[str | None, str | None]:
    """``(key, variable it came from)`` for ``base_url``: ``SIUO_JUDGE_API_KEY`` first; ``OPENAI_API_KEY``
    only for OpenAI's own API, so that key never travels to another host."""
    if (v := _env(ENV_KEY)) is not None:
        return v, ENV_KEY
    if is_openai_api(base_url) and (v := _env(ENV_OPENAI_KEY)) is not None:
        return v, ENV_OPENAI_KEY
    return None, None
