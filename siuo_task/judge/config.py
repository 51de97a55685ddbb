"""Judge configuration: ``JudgeConfig`` and the ``SIUO_JUDGE_*`` variables, the request shape per
judge family. The endpoint and its key are resolved by :mod:`.endpoint` (``JudgeConfig.target``).

Each setting comes from its ``SIUO_JUDGE_*`` variable first, then from lmms-eval's judge variable
for it (:mod:`.host_vars`: ``MODEL_VERSION``, ``OPENAI_API_URL``/``AZURE_ENDPOINT``/``LLM_JUDGE_URL``,
``API_VERSION``), then the default; keys go only where the user paired them (:mod:`.endpoint`).
Everything is read from the process environment over lmms-eval's ``.env`` file. ``JudgeConfig``
records where each setting came from (``settings``) and the judge lmms-eval's variables name
(``differs_from_lmms_eval``). Pure: no network, no SDK import."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siuo_task.core.judging import DEFAULT_MAX_ERROR_RATE

from . import host_vars
from .endpoint import (  # noqa: F401 - re-exported (0.1 import paths)
    ARGUMENT,
    DEFAULT_AZURE_API_VERSION,
    DEFAULT_BASE_URL,
    ENV_AZURE_API_VERSION,
    ENV_KEY,
    ENV_OPENAI_KEY,
    INVALID,
    Endpoint,
    is_azure,
    is_openai_api,
    normalized_endpoint,
    resolve,
    resolve_settings,
    scoped_key,
    without_query,
)
from .redaction import redact  # noqa: F401 - re-exported
from .transport import TRANSPORTS

DEFAULT_JUDGE_MODEL = "gpt-4o-mini-2024-07-18"
DEFAULT_CACHE_DIR = "~/.cache/siuo_task/judge"

# Request shapes. "chat": max_tokens + temperature (every OpenAI-compatible server, gpt-4o...).
# "reasoning": max_completion_tokens with room for the hidden reasoning, no temperature, optional
# reasoning_effort (gpt-5*, o1/o3/o4*: they refuse max_tokens and any non-default temperature).
SHAPES = ("chat", "reasoning")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
_REASONING_MODEL_RE = re.compile(r"^(?:gpt-5|o1|o3|o4)(?:$|[-._:])", re.IGNORECASE)


def is_reasoning_model(model: str) -> bool:
    """gpt-5*, o1*, o3*, o4* (a provider prefix such as ``openai/`` is ignored)."""
    return bool(_REASONING_MODEL_RE.match(model.strip().rsplit("/", 1)[-1]))


# --------------------------------------------------------------------------- env parsing


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
    bad = not math.isfinite(value) or (value <= minimum if strict else value < minimum) or (maximum is not None and value > maximum)
    if bad:  # nan, inf: every setting read this way bounds something (a wait, a share)
        op = ">" if strict else ">="
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be a finite number {op} {minimum:g}{upper}, got {raw!r}")
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
    key_source: str | None = None  # the variable the key came from ("SIUO_JUDGE_API_KEY", ...), "argument" or None (no key)
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
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE  # judge errors above this share of judge calls make the result invalid
    azure_api_version: str | None = None  # Azure deployments URL without ?api-version=
    url_source: str | None = None  # the variable base_url came from; None: "argument" (or "default" for the default URL)
    transport: str = "auto"  # the SDK's HTTP transport: "aiohttp" where the SDK has it, else "httpx" (see .transport)
    model_source: str | None = None  # the variable model came from; None: "default" for the default model, else "argument"
    api_version_source: str | None = None  # the variable azure_api_version came from; None: SIUO_JUDGE_AZURE_API_VERSION
    endpoint_kind: str | None = None  # "azure": base_url speaks Azure's API whatever its host (lmms-eval's AZURE_ENDPOINT)
    # The judge lmms-eval's variables name (from_env), compared in differs_from_lmms_eval(); never a key.
    lmms_eval_judge: host_vars.HostJudge | None = field(default=None, repr=False, compare=False)
    dotenv_path: str | None = field(default=None, repr=False, compare=False)  # the .env file the settings were read over
    # The endpoint, resolved once from base_url, the key and the Azure API version (see .endpoint).
    target: Endpoint = field(init=False, repr=False, compare=False)

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
        for name in ("timeout_s", "retry_after_cap_s"):  # every wait is bounded: finite
            if not _is_num(getattr(self, name)) or not 0 < getattr(self, name) < math.inf:
                raise bad(f"{name} must be a finite number > 0, got {getattr(self, name)!r}")
        if not _is_num(self.max_wait_s) or not 0 <= self.max_wait_s < math.inf:
            raise bad(f"max_wait_s must be a finite number >= 0, got {self.max_wait_s!r}")
        if self.transport not in TRANSPORTS:
            raise bad(f"transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}")
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
        for name in ("key_source", "url_source", "model_source", "api_version_source"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise bad(f"{name} must be None or the name of a setting, got {value!r}")
        if self.api_key and self.key_source is None:
            object.__setattr__(self, "key_source", ARGUMENT)
        if not self.api_key:
            object.__setattr__(self, "key_source", None)
        if self.url_source is None:
            object.__setattr__(self, "url_source", "default" if self.base_url == DEFAULT_BASE_URL else ARGUMENT)
        if self.model_source is None:
            object.__setattr__(self, "model_source", "default" if self.model == DEFAULT_JUDGE_MODEL else ARGUMENT)
        if self.endpoint_kind not in (None, "azure"):
            raise bad(f"endpoint_kind must be None or 'azure', got {self.endpoint_kind!r}")
        object.__setattr__(
            self,
            "target",
            resolve(
                self.base_url,
                self.api_key,
                key_source=self.key_source,
                url_source=self.url_source,
                azure_api_version=self.azure_api_version,
                api_version_source=self.api_version_source or ENV_AZURE_API_VERSION,
                kind=self.endpoint_kind,
            ),
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> JudgeConfig:
        """A config from the judge variables; keyword ``overrides`` (field names) win, and overrides
        whose value is ``None`` are ignored (so CLI flags pass straight through).

        Each setting: its ``SIUO_JUDGE_*`` variable, then lmms-eval's variable for it (``MODEL_VERSION``,
        ``API_VERSION``; the URL from ``OPENAI_API_URL``, ``AZURE_ENDPOINT`` or ``LLM_JUDGE_URL`` as
        ``API_TYPE`` says), then the default; all read from the process environment over lmms-eval's
        ``.env`` file (:func:`.host_vars.judge_environ`). The URL and its key come from
        :func:`.endpoint.resolve_settings` (key scoping: a key goes only to the endpoint it is paired
        with). Bad values raise ``ValueError`` naming the variable.
        """
        known = set(cls.__dataclass_fields__) - {"target"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"JudgeConfig.from_env got unknown field(s): {', '.join(unknown)}")

        env = host_vars.judge_environ()

        def get(name: str) -> str | None:
            return host_vars.value(env, name)

        try:  # lmms-eval's variables are followed for a judge SIUO can call as lmms-eval does
            follow = host_vars.api_type(env) in host_vars.FOLLOWED
        except ValueError:
            follow = False  # raised by resolve_settings below when its URL is needed
        kw: dict[str, Any] = {}
        if (v := get("SIUO_JUDGE_MODEL")) is not None:
            kw.update(model=v, model_source=env.named("SIUO_JUDGE_MODEL"))
        elif follow and (v := get(host_vars.MODEL_VERSION)) is not None:
            kw.update(model=v, model_source=env.named(host_vars.MODEL_VERSION))
        if (v := get("SIUO_JUDGE_CONCURRENCY")) is not None:
            kw["concurrency"] = _parse_int("SIUO_JUDGE_CONCURRENCY", v, 1)
        if (v := env.get("SIUO_JUDGE_CACHE")) is not None:
            kw["cache_dir"] = v.strip()  # "" / "off" disable
        if (v := get("SIUO_JUDGE_MAX_TOKENS")) is not None:
            kw["max_tokens"] = _parse_int("SIUO_JUDGE_MAX_TOKENS", v, 1)
        if (v := get("SIUO_JUDGE_MAX_COMPLETION_TOKENS")) is not None:
            kw["max_completion_tokens"] = _parse_int("SIUO_JUDGE_MAX_COMPLETION_TOKENS", v, 1)
        if (v := get("SIUO_JUDGE_TEMPERATURE")) is not None:
            kw["temperature"] = _parse_float("SIUO_JUDGE_TEMPERATURE", v, 0.0, strict=False)
        if (v := get("SIUO_JUDGE_REQUEST_SHAPE")) is not None:
            kw["request_shape"] = _choice("SIUO_JUDGE_REQUEST_SHAPE", v, ("auto", *SHAPES))
        if (v := get("SIUO_JUDGE_REASONING_EFFORT")) is not None:
            kw["reasoning_effort"] = None if v.lower() == "default" else _choice("SIUO_JUDGE_REASONING_EFFORT", v, REASONING_EFFORTS)
        if (v := get("SIUO_JUDGE_TOKEN_BUDGET")) is not None:
            kw["token_budget"] = None if v.lower() in ("none", "unlimited", "off") else _parse_int("SIUO_JUDGE_TOKEN_BUDGET", v, 1)
        if (v := get("SIUO_JUDGE_TIMEOUT")) is not None:
            kw["timeout_s"] = _parse_float("SIUO_JUDGE_TIMEOUT", v, 0.0, strict=True)
        if (v := get("SIUO_JUDGE_MAX_RETRIES")) is not None:
            kw["max_retries"] = _parse_int("SIUO_JUDGE_MAX_RETRIES", v, 0)
        if (v := get("SIUO_JUDGE_MAX_WAIT")) is not None:
            kw["max_wait_s"] = _parse_float("SIUO_JUDGE_MAX_WAIT", v, 0.0, strict=False)
        if (v := get("SIUO_JUDGE_MAX_ERROR_RATE")) is not None:
            kw["max_error_rate"] = _parse_float("SIUO_JUDGE_MAX_ERROR_RATE", v, 0.0, strict=False, maximum=1.0)
        if (v := get(ENV_AZURE_API_VERSION)) is not None:
            kw.update(azure_api_version=v, api_version_source=env.named(ENV_AZURE_API_VERSION))
        elif follow and (v := get(host_vars.API_VERSION)) is not None:
            kw.update(azure_api_version=v, api_version_source=env.named(host_vars.API_VERSION))
        if (v := get("SIUO_JUDGE_TRANSPORT")) is not None:
            kw["transport"] = _choice("SIUO_JUDGE_TRANSPORT", v, TRANSPORTS)

        for name, value in overrides.items():
            if value is not None:
                kw[name] = value
        if overrides.get("model") is not None:
            kw["model_source"] = overrides.get("model_source") or ARGUMENT
        found = resolve_settings(env, base_url=overrides.get("base_url"), api_key=overrides.get("api_key"))
        kw.update(
            base_url=found.url,
            url_source=overrides.get("url_source") or found.url_source,
            api_key=found.key,
            key_source=found.key_source,
            endpoint_kind=overrides.get("endpoint_kind") or found.kind,
            lmms_eval_judge=host_vars.host_judge(env),
            dotenv_path=str(env.dotenv_path) if env.dotenv_path else None,
        )
        return cls(**kw)

    # ------------------------------------------------------------------ where the settings came from
    @property
    def settings(self) -> dict:
        """The setting each part of the judge came from (variable names, ``default`` or ``argument``;
        ``NAME (.env)`` when read from lmms-eval's .env file): never a value."""
        target = self.target
        return {
            "model": self.model_source,
            "base_url": self.url_source,
            "api_key": target.key_source,
            "api_version": target.api_version_source if target.azure_deployments else None,
        }

    def variable_for(self, part: str) -> str:
        """The variable to fix for ``part`` (``model`` or ``base_url``): the one it came from, else the
        ``SIUO_JUDGE_*`` variable that sets it."""
        source = self.model_source if part == "model" else self.url_source
        if source in (None, "default", ARGUMENT, host_vars.LOCAL_DEFAULT_SOURCE):
            return "SIUO_JUDGE_MODEL" if part == "model" else "SIUO_JUDGE_BASE_URL"
        return source

    @property
    def settings_described(self) -> str:
        """``model from X, URL from Y, key from Z`` (names only), for logs and ``siuo doctor``."""

        def origin(what: str, source: str | None) -> str:
            return f"the default {what}" if source == "default" else f"{what} from {'an argument' if source == ARGUMENT else source}"

        s = self.settings
        parts = [origin("model", s["model"]), origin("URL", s["base_url"]), f"key from {s['api_key']}" if s["api_key"] else "no key"]
        if s["api_version"]:
            parts.append(origin("api-version", s["api_version"]))
        return ", ".join(parts)

    def lmms_eval_judge_provenance(self) -> dict | None:
        """The judge lmms-eval's variables name, and whether it is this one, as a result's
        ``provenance.judge.lmms_eval_judge`` records it (None: they name none). Never a key."""
        other = self.lmms_eval_judge
        if other is None:
            return None
        return {
            "api_type": other.api_type,
            "model": other.model,
            "endpoint_host": other.host,
            "variables": list(other.variables),
            "same": self.differs_from_lmms_eval() is None,
        }

    def differs_from_lmms_eval(self) -> str | None:
        """A warning when lmms-eval's judge variables name another judge (model or endpoint) than this
        one - the judge lmms-eval's judged tasks in the same run use - naming both; None when they
        name none or the same. Never a key."""
        other = self.lmms_eval_judge
        if other is None:
            return None
        model_differs = other.model is not None and other.model != self.model
        try:
            theirs = without_query(other.url) if other.url else None
        except ValueError:
            theirs = other.url
        url_differs = theirs is None or theirs != self.target.url
        if not (model_differs or url_differs):
            return None
        ours_at, theirs_at = self.target.host, other.host
        if theirs is not None and ours_at == theirs_at:  # same host, another path: the URLs tell them apart
            ours_at, theirs_at = self.target.url, theirs
        chosen = [
            s
            for s in dict.fromkeys((self.model_source, self.url_source, self.target.key_source))
            if s and (s.startswith("SIUO_JUDGE_") or s == ARGUMENT)
        ]
        chosen = [("the judge arguments (--judge-*)" if s == ARGUMENT else s) for s in chosen]
        if chosen:
            fix = f"to grade SIUO with lmms-eval's judge, unset {', '.join(chosen)}"
        else:
            fix = "SIUO uses its defaults; set SIUO_JUDGE_BASE_URL and SIUO_JUDGE_MODEL to choose its judge"
        return (
            f"SIUO judge: SIUO grades with {self.model} at {ours_at} ({self.settings_described}), not with the judge "
            f"lmms-eval's variables name for its judged tasks in this run: {other.described(theirs_at)}. SIUO's numbers and "
            f"theirs come from different judges; {fix}"
        )

    # ------------------------------------------------------------------ derived
    @property
    def endpoint_host(self) -> str:
        """``host[:port]`` of ``base_url`` (never any credentials or path)."""
        return self.target.host

    @property
    def endpoint(self) -> str:
        """The normalised base URL (no credentials): part of every cache key."""
        return self.target.cache_identity

    @property
    def azure(self) -> bool:
        return self.target.kind == "azure"

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
