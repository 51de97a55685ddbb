"""lmms-eval's own judge variables, read as lmms-eval's LLM judge reads them, and its ``.env`` file.

lmms-eval's judged tasks (mmvet, llava_in_the_wild, holisafe_llm_judge, ...) take their judge from
``lmms_eval/llm_judge`` (0.6.1 to 0.7.3 read the same variables):

- ``API_TYPE``: ``openai`` (the default) or ``async_openai``: the openai SDK with
  ``base_url=OPENAI_API_URL`` (default ``https://api.openai.com/v1``: a *base* URL, the SDK appends
  ``/chat/completions``) and ``api_key=OPENAI_API_KEY``. Older tasks post to ``OPENAI_API_URL`` as a
  full ``.../chat/completions`` URL: the same endpoint, read here without that suffix.
- ``azure`` or ``async_azure``: the SDK's ``AzureOpenAI(azure_endpoint=AZURE_ENDPOINT,
  api_key=AZURE_API_KEY, api_version=API_VERSION)``: requests go to
  ``AZURE_ENDPOINT/openai/deployments/<MODEL_VERSION>/chat/completions?api-version=...`` with the key
  in ``api-key``. Older tasks give a full deployments URL there: read as that deployment.
- ``local``: ``LLM_JUDGE_URL`` (default ``http://localhost:8000/v1/chat/completions``), no key.
- ``bedrock``, ``dummy``: judges SIUO can't call (not an OpenAI-compatible endpoint).
- ``MODEL_VERSION``: the judge model (each task has its own default when it is unset).
- lmms-eval 0.7's judge loads the first of ``./.env`` and a ``.env`` four folders above its
  ``llm_judge/factory.py`` into the process environment when ``lmms_eval.evaluator`` is imported
  (python-dotenv, ``override=False``).

:func:`judge_environ` gives the view the judge settings are read from - the process environment over
that ``.env`` file, as the environment is once lmms-eval has loaded it - so ``siuo score`` and every
harness resolve the same judge as an lmms-eval run in the same folder, whenever the file is loaded.
The file is read, never loaded into ``os.environ``. :func:`host_judge` says which judge lmms-eval's
variables name. :mod:`.endpoint` turns these into URL sources with their paired keys. Pure: no
network, imports no harness (lmms-eval's folder is located without importing it).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

API_TYPE = "API_TYPE"
MODEL_VERSION = "MODEL_VERSION"
OPENAI_API_URL = "OPENAI_API_URL"
OPENAI_API_KEY = "OPENAI_API_KEY"
AZURE_ENDPOINT = "AZURE_ENDPOINT"
AZURE_API_KEY = "AZURE_API_KEY"
API_VERSION = "API_VERSION"
LLM_JUDGE_URL = "LLM_JUDGE_URL"

# Any of these set: lmms-eval's variables name a judge (OPENAI_API_KEY alone is the SDK's own key).
NAMING = (API_TYPE, MODEL_VERSION, OPENAI_API_URL, AZURE_ENDPOINT, AZURE_API_KEY, API_VERSION, LLM_JUDGE_URL)
VARIABLES = NAMING + (OPENAI_API_KEY,)

OPENAI_TYPES = ("openai", "async_openai")
AZURE_TYPES = ("azure", "async_azure")
LOCAL_TYPES = ("local",)
FOLLOWED = OPENAI_TYPES + AZURE_TYPES + LOCAL_TYPES  # judges SIUO calls as lmms-eval does
NOT_CALLABLE = ("bedrock", "dummy")  # lmms-eval judges that are no OpenAI-compatible endpoint
LMMS_EVAL_OPENAI_URL = "https://api.openai.com/v1"
LMMS_EVAL_LOCAL_URL = "http://localhost:8000/v1/chat/completions"
LOCAL_DEFAULT_SOURCE = "API_TYPE=local"  # the URL is lmms-eval's default LLM_JUDGE_URL
DOTENV_MARK = " (.env)"
_CHAT_SUFFIX = "/chat/completions"


# --------------------------------------------------------------------------- the environment and .env


class JudgeEnviron(Mapping):
    """The process environment over the values of one ``.env`` file: a variable set in the
    environment (even empty) wins, as ``load_dotenv(override=False)`` leaves it."""

    def __init__(self, environ: Mapping[str, str], dotenv: Mapping[str, str] | None = None, dotenv_path: Path | None = None):
        self._environ = environ
        self._dotenv = {k: v for k, v in (dotenv or {}).items() if v is not None}
        self.dotenv_path = dotenv_path

    def __getitem__(self, name: str) -> str:
        if name in self._environ:
            return self._environ[name]
        return self._dotenv[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._environ
        yield from (k for k in self._dotenv if k not in self._environ)

    def __len__(self) -> int:
        return len(set(self._environ) | set(self._dotenv))

    def from_dotenv(self, name: str) -> bool:
        return name not in self._environ and name in self._dotenv

    def named(self, name: str) -> str:
        """``name``, marked `` (.env)`` when its value comes from the ``.env`` file."""
        return name + DOTENV_MARK if self.from_dotenv(name) else name


def lmms_eval_dotenv() -> Path | None:
    """The second ``.env`` lmms-eval 0.7's judge looks for: four folders above its
    ``llm_judge/factory.py`` (a virtualenv's ``lib/`` in a pip install), or None without lmms-eval."""
    try:
        spec = importlib.util.find_spec("lmms_eval")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return (Path(spec.origin).parent / "llm_judge" / "factory.py").resolve().parents[4] / ".env"


def find_dotenv() -> Path | None:
    """The ``.env`` file lmms-eval's judge loads: the first of ``./.env`` and :func:`lmms_eval_dotenv`."""
    for candidate in (Path.cwd() / ".env", lmms_eval_dotenv()):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def judge_environ(environ: Mapping[str, str] | None = None) -> JudgeEnviron:
    """What the judge settings are read from: ``environ`` (default: the process environment) over
    the ``.env`` file of :func:`find_dotenv`, parsed by python-dotenv as lmms-eval parses it (no file
    or no python-dotenv: the environment alone, as lmms-eval then has)."""
    environ = os.environ if environ is None else environ
    path = find_dotenv()
    if path is None:
        return JudgeEnviron(environ)
    try:
        from dotenv import dotenv_values
    except ImportError:
        return JudgeEnviron(environ)
    return JudgeEnviron(environ, dotenv_values(path), path)


def value(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, stripped; None when unset or blank."""
    raw = env.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    return raw or None


def named(env: Mapping[str, str], name: str) -> str:
    return env.named(name) if isinstance(env, JudgeEnviron) else name


# --------------------------------------------------------------------------- what the variables mean


def api_type(env: Mapping[str, str]) -> str:
    """``API_TYPE`` as lmms-eval reads it (lower-case, default ``openai``); ValueError for a type
    lmms-eval does not know (its judged tasks would fail on it too)."""
    raw = (env.get(API_TYPE) or "openai").strip().lower() or "openai"
    if raw not in FOLLOWED + NOT_CALLABLE:
        raise ValueError(
            f"{named(env, API_TYPE)}={env.get(API_TYPE)!r} is not a judge type of lmms-eval ({', '.join(FOLLOWED + NOT_CALLABLE)}), "
            "so SIUO can't tell which judge the other tasks use: fix API_TYPE, or set SIUO_JUDGE_BASE_URL (docs/judge.md)"
        )
    return raw


def _without_chat_suffix(url: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    path = parts.path.rstrip("/")
    if path.endswith(_CHAT_SUFFIX):
        path = path[: -len(_CHAT_SUFFIX)]
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def openai_url(env: Mapping[str, str]) -> str | None:
    """``OPENAI_API_URL`` as a base URL (a trailing ``/chat/completions`` removed), or None when unset."""
    raw = value(env, OPENAI_API_URL)
    return None if raw is None else _without_chat_suffix(raw)


def azure_url(env: Mapping[str, str]) -> str | None:
    """The base URL for ``AZURE_ENDPOINT``: ``<endpoint>/openai`` (the SDK's ``azure_endpoint``; the
    deployment is the model), or a full deployments URL up to its deployment (with its query)."""
    raw = value(env, AZURE_ENDPOINT)
    if raw is None:
        return None
    try:
        parts = urlsplit(raw)
    except ValueError:
        return raw
    if "/deployments/" in parts.path:
        return _without_chat_suffix(raw)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/openai", parts.query, ""))


def local_url(env: Mapping[str, str]) -> str:
    return _without_chat_suffix(value(env, LLM_JUDGE_URL) or LMMS_EVAL_LOCAL_URL)


def model(env: Mapping[str, str]) -> str | None:
    return value(env, MODEL_VERSION)


@dataclass(frozen=True)
class HostJudge:
    """The judge lmms-eval's variables name (what its judged tasks in the same run use)."""

    api_type: str  # as lmms-eval reads API_TYPE ("openai" when unset), or the unknown value given
    model: str | None  # MODEL_VERSION; None: each task's own default
    url: str | None  # the base URL SIUO would call for it; None: not a judge SIUO can call
    variables: tuple  # the variables that are set, marked " (.env)" when read from that file
    unusable: str | None = None  # why SIUO can't call it (url None)

    @property
    def host(self) -> str | None:
        try:
            return urlsplit(self.url).netloc.rpartition("@")[2].lower() if self.url else None
        except ValueError:
            return None

    def described(self, where: str | None = None) -> str:
        """``<model> at <host> (API_TYPE=...; variables)``: never a key."""
        who = self.model or "each task's default model (MODEL_VERSION unset)"
        if self.url is None:
            return f"{who} via {self.unusable or f'API_TYPE={self.api_type}'} (set: {', '.join(self.variables)})"
        return f"{who} at {where or self.host} (API_TYPE {self.api_type}; set: {', '.join(self.variables)})"


def host_judge(env: Mapping[str, str]) -> HostJudge | None:
    """The judge lmms-eval's variables name, or None when none of them is set (:data:`NAMING`)."""
    present = tuple(named(env, name) for name in VARIABLES if value(env, name) is not None)
    if not any(value(env, name) is not None for name in NAMING):
        return None
    try:
        kind = api_type(env)
    except ValueError:
        raw = (env.get(API_TYPE) or "").strip()
        return HostJudge(raw, model(env), None, present, f"API_TYPE={raw}, a judge type lmms-eval does not know")
    unusable = None
    if kind in OPENAI_TYPES:
        url = openai_url(env) or LMMS_EVAL_OPENAI_URL
    elif kind in AZURE_TYPES:
        url = azure_url(env)
        unusable = None if url else f"API_TYPE={kind} without AZURE_ENDPOINT"
    elif kind in LOCAL_TYPES:
        url = local_url(env)
    else:
        url = None
        unusable = f"API_TYPE={kind}, which SIUO can't call (it needs an OpenAI-compatible endpoint)"
    return HostJudge(kind, model(env), url, present, unusable)
