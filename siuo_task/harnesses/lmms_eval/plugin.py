"""Makes ``lmms-eval --tasks siuo`` find SIUO's YAMLs after a plain ``pip install``.

lmms-eval 0.7.3 has no entry point for tasks, and ``LMMS_EVAL_PLUGINS`` does not reach its task
index. It does load the ``lmms_eval.models`` entry-point group when ``lmms_eval.models`` is imported,
which its CLI does before it builds the ``TaskManager``. This package registers
:func:`register` in that group: it registers no model, and wraps
``TaskManager.initialize_tasks`` so the SIUO task folder is indexed after lmms-eval's own tasks
(which therefore keep priority: no built-in task is changed or hidden).

lmms-eval merges its index with the earlier folder winning: its own tasks first, then each
``--include_path``, SIUO's folder last. A task of another source named like one of SIUO's (an
lmms-eval that ships a ``siuo_gen`` one day, an old copy of the YAMLs on an ``--include_path``)
would silently take the name; the wrapper finds that and logs an error naming both files and the
switch :data:`ENV_TASK_SOURCE` (``siuo-task``: SIUO's YAMLs take the names; ``host``: the other
source keeps them, a warning instead of the error). It records what it found on the TaskManager
(``siuo_task_shadowing``), which ``siuo doctor`` reads.

If a future lmms-eval changes what this relies on, :func:`register` logs an error that says so and
names the stable fallback (``--include_path "$(siuo tasks-path)"``); it never fails silently, and it
never raises: lmms-eval loads every plugin of the group in one loop, so an exception here would
also lose the models of the plugins after this one. lmms-eval 0.5.x and older have no such group
(:func:`entry_point_support` tells, without importing lmms-eval); there only ``--include_path`` works.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from pathlib import Path

FALLBACK = '--include_path "$(siuo tasks-path)"'
_MARK = "__siuo_task_wrapped__"
# The listing command that shows SIUO's tasks on lmms-eval 0.6.x and 0.7.x: the eval command loads
# the entry-point plugins first. lmms-eval 0.7's `tasks` subcommand, its TUI and its MCP/HTTP
# servers build their task lists without loading plugins (0.6 has no `tasks` subcommand).
LISTING = "lmms-eval --tasks list"
LISTING_NOTE = (
    f"list the tasks with `{LISTING}` (or `python -m lmms_eval --tasks list`); lmms-eval 0.7's `lmms-eval tasks list`, "
    "its TUI and its MCP/HTTP task listings don't load plugins, so SIUO is missing there "
    '(`lmms-eval tasks list --include-path "$(siuo tasks-path)"` shows it)'
)
ENV_TASK_SOURCE = "SIUO_TASK_SOURCE"
SOURCES = ("siuo-task", "host")  # which task takes a SIUO name both sources define
SHADOWING_ATTR = "siuo_task_shadowing"  # on the TaskManager: {"choice": ..., "clashes": {name: {source: file}}}


def _fallback_hint() -> str:
    try:
        from siuo_task.harnesses.paths import lmms_eval_tasks_dir

        where = f' (here: --include_path "{lmms_eval_tasks_dir()}")'
    except Exception:  # noqa: BLE001 - the hint must not fail
        where = ""
    return f"run lmms-eval with {FALLBACK}{where} instead"


def _log(level: str, message: str) -> None:
    try:
        from loguru import logger

        getattr(logger, level)(message)
    except Exception:  # noqa: BLE001 - no logger: stderr
        print(message, file=sys.stderr)


def _log_error(message: str) -> None:
    _log("error", message)


# ------------------------------------------------------------------------------------------ shadowing


def _where(entry) -> str:
    path = entry.get("yaml_path") if isinstance(entry, dict) else None
    if isinstance(path, str):
        return os.path.realpath(path)  # the same file reached through a link or another spelling is no clash
    kind = entry.get("type", "entry") if isinstance(entry, dict) else "entry"
    return f"a {kind} of lmms-eval's task index without a file of its own"


def find_clashes(index: dict, ours: dict) -> dict:
    """``{name: {"host": where, "siuo-task": where}}`` for each SIUO name that ``index`` maps to
    another source than SIUO's own folder (``ours``: that folder's entries)."""
    clashes = {}
    for name, entry in ours.items():
        found = index.get(name)
        if found is not None and _where(found) != _where(entry):
            clashes[name] = {"host": _where(found), "siuo-task": _where(entry)}
    return clashes


def task_source_choice() -> tuple:
    """``(choice, problem)``: the :data:`ENV_TASK_SOURCE` value (``None`` if unset) and, for a value
    that is not one of :data:`SOURCES`, the sentence saying so (the value is then ignored)."""
    value = os.environ.get(ENV_TASK_SOURCE, "").strip()
    if not value:
        return None, None
    if value not in SOURCES:
        return None, f"{ENV_TASK_SOURCE}={value!r} is not one of {', '.join(SOURCES)}; ignored"
    return value, None


def _describe(clashes: dict) -> str:
    return "; ".join(f"{name}: {c['host']} (siuo-task's: {c['siuo-task']})" for name, c in clashes.items())


def settle_shadowing(index: dict, ours: dict) -> tuple:
    """Apply the user's choice where another source defines a SIUO task name.

    Returns ``(index, report)``: the index to use (SIUO's entries put in only with
    ``SIUO_TASK_SOURCE=siuo-task``) and ``{"choice", "clashes"}``. Logs the error, warning or note."""
    clashes = find_clashes(index, ours)
    choice, problem = task_source_choice()
    if problem:
        _log("error", f"siuo-task: {problem}")
    if clashes:
        names = ", ".join(clashes)
        if choice == "siuo-task":
            index = {**index, **{name: ours[name] for name in clashes}}
            _log(
                "info",
                f"siuo-task: {ENV_TASK_SOURCE}=siuo-task: {names} run siuo-task's SIUO tasks, not the other task(s) "
                f"of that name ({_describe(clashes)})",
            )
        elif choice == "host":
            _log(
                "warning",
                f"siuo-task: {ENV_TASK_SOURCE}=host: `--tasks {names}` runs the other task(s) of that name, "
                f"not siuo-task's ({_describe(clashes)}); their numbers are not this package's SIUO protocol",
            )
        else:
            _log(
                "error",
                f"siuo-task: lmms-eval's task index already has task(s) named like siuo-task's: {_describe(clashes)}. "
                f"lmms-eval lets the earlier source win, so `--tasks {names}` runs that one, not siuo-task's. Choose: "
                f"{ENV_TASK_SOURCE}=siuo-task runs siuo-task's SIUO tasks; {ENV_TASK_SOURCE}=host keeps the other one "
                "(and turns this error into a warning). `siuo doctor` checks it.",
            )
    return index, {"choice": choice, "clashes": clashes}


def _settle(manager, index: dict, tasks_dir: str) -> dict:
    """:func:`settle_shadowing` on lmms-eval's index, recorded on the TaskManager; never raises."""
    try:
        ours = manager._get_task_and_group(tasks_dir)  # lmms-eval's own reading of the SIUO folder (five YAMLs)
        index, report = settle_shadowing(index, ours)
        setattr(manager, SHADOWING_ATTR, report)
    except Exception as exc:  # noqa: BLE001 - the index lmms-eval built stands
        _log_error(
            f"siuo-task: could not check whether another task takes a SIUO task name ({type(exc).__name__}: {exc}); "
            "`python -m lmms_eval --tasks list --verbosity DEBUG` shows where each task comes from"
        )
    return index


def entry_point_support() -> tuple[bool | None, str]:
    """Whether the installed lmms-eval loads the ``lmms_eval.models`` entry-point group, read from
    its source (no import: importing lmms-eval takes seconds). ``(None, reason)`` without lmms-eval."""
    import importlib.metadata
    import importlib.util

    try:
        spec = importlib.util.find_spec("lmms_eval")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None, "lmms-eval is not installed"
    try:
        version = importlib.metadata.version("lmms_eval")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    sources = [p.read_text(encoding="utf-8", errors="ignore") for p in (models / "__init__.py", models / "registry_v2.py") if p.is_file()]
    if any("load_entrypoint_manifests" in t or ("entry_points" in t and "lmms_eval.models" in t) for t in sources):
        return True, f"lmms-eval {version} loads the lmms_eval.models entry-point group"
    return False, (
        f"lmms-eval {version} does not load the lmms_eval.models entry-point group (it came in 0.6.0), "
        "so siuo-task can't register its tasks there and `--tasks siuo` alone is not found"
    )


def install_task_path() -> bool:
    """Wrap ``TaskManager.initialize_tasks`` once; return whether the SIUO folder is now indexed."""
    from siuo_task.harnesses.paths import lmms_eval_tasks_dir

    try:
        from lmms_eval.tasks import TaskManager
    except Exception as exc:  # pragma: no cover - lmms-eval missing or broken
        _log_error(f"siuo-task: could not import lmms_eval.tasks.TaskManager ({exc}); {_fallback_hint()}")
        return False
    original = getattr(TaskManager, "initialize_tasks", None)
    if original is None or "include_path" not in inspect.signature(original).parameters:
        _log_error(
            "siuo-task: this lmms-eval's TaskManager.initialize_tasks is not the one siuo-task knows "
            f"(no include_path parameter), so SIUO tasks are not registered automatically; {_fallback_hint()}"
        )
        return False
    if getattr(original, _MARK, False):
        return True
    tasks_dir = str(lmms_eval_tasks_dir())

    @functools.wraps(original)
    def initialize_tasks(self, include_path=None, include_defaults=True, *args, **kwargs):
        if not include_defaults:
            return original(self, include_path, include_defaults, *args, **kwargs)
        paths = [] if include_path is None else ([include_path] if isinstance(include_path, str) else list(include_path))
        if tasks_dir not in paths:
            paths.append(tasks_dir)
        index = original(self, paths, include_defaults, *args, **kwargs)
        return _settle(self, index, tasks_dir)

    setattr(initialize_tasks, _MARK, True)
    TaskManager.initialize_tasks = initialize_tasks
    return True


def register():
    """Entry point of the ``lmms_eval.models`` group: registers the SIUO task folder, no model.

    Never raises into lmms-eval's plugin loop: any failure is logged with the fallback."""
    try:
        install_task_path()
    except Exception as exc:  # noqa: BLE001
        _log_error(
            f"siuo-task: could not register the SIUO tasks with lmms-eval ({type(exc).__name__}: {exc}); "
            f"`--tasks siuo` will not be found this way: {_fallback_hint()}"
        )
    return []
