"""Makes ``lmms-eval --tasks siuo`` find SIUO's YAMLs after a plain ``pip install``.

lmms-eval 0.7.3 has no entry point for tasks, and ``LMMS_EVAL_PLUGINS`` does not reach its task
index. It does load the ``lmms_eval.models`` entry-point group when ``lmms_eval.models`` is imported,
which its CLI does before it builds the ``TaskManager``. This package registers
:func:`register` in that group: it registers no model, and wraps
``TaskManager.initialize_tasks`` so the SIUO task folder is indexed after lmms-eval's own tasks
(which therefore keep priority: no built-in task is changed or hidden).

If a future lmms-eval changes what this relies on, :func:`register` logs an error that says so and
names the stable fallback (``--include_path "$(siuo tasks-path)"``); it never fails silently, and it
never raises: lmms-eval loads every plugin of the group in one loop, so an exception here would
also lose the models of the plugins after this one. lmms-eval 0.5.x and older have no such group
(:func:`entry_point_support` tells, without importing lmms-eval); there only ``--include_path`` works.
"""

from __future__ import annotations

import functools
import inspect
import sys
from pathlib import Path
from typing import Optional

FALLBACK = '--include_path "$(siuo tasks-path)"'
_MARK = "__siuo_task_wrapped__"


def _fallback_hint() -> str:
    try:
        from siuo_task.harnesses.paths import lmms_eval_tasks_dir

        where = f' (here: --include_path "{lmms_eval_tasks_dir()}")'
    except Exception:  # noqa: BLE001 - the hint must not fail
        where = ""
    return f"run lmms-eval with {FALLBACK}{where} instead"


def _log_error(message: str) -> None:
    try:
        from loguru import logger

        logger.error(message)
    except Exception:  # noqa: BLE001 - no logger: stderr
        print(message, file=sys.stderr)


def entry_point_support() -> tuple[Optional[bool], str]:
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
    return False, (f"lmms-eval {version} does not load the lmms_eval.models entry-point group (it came in 0.6.0), "
                   "so siuo-task can't register its tasks there and `--tasks siuo` alone is not found")


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
        if include_defaults:
            paths = [] if include_path is None else ([include_path] if isinstance(include_path, str) else list(include_path))
            if tasks_dir not in paths:
                paths.append(tasks_dir)
            include_path = paths
        return original(self, include_path, include_defaults, *args, **kwargs)

    setattr(initialize_tasks, _MARK, True)
    TaskManager.initialize_tasks = initialize_tasks
    return True


def register():
    """Entry point of the ``lmms_eval.models`` group: registers the SIUO task folder, no model.

    Never raises into lmms-eval's plugin loop: any failure is logged with the fallback."""
    try:
        install_task_path()
    except Exception as exc:  # noqa: BLE001
        _log_error(f"siuo-task: could not register the SIUO tasks with lmms-eval ({type(exc).__name__}: {exc}); "
                   f"`--tasks siuo` will not be found this way: {_fallback_hint()}")
    return []
