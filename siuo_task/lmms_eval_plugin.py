"""Makes ``lmms-eval --tasks siuo`` find SIUO's YAMLs after a plain ``pip install``.

lmms-eval 0.7.3 has no entry point for tasks, and ``LMMS_EVAL_PLUGINS`` does not reach its task
index. It does load the ``lmms_eval.models`` entry-point group when ``lmms_eval.models`` is imported,
which its CLI does before it builds the ``TaskManager``. This package registers
:func:`register` in that group: it registers no model, and wraps
``TaskManager.initialize_tasks`` so the SIUO task folder is indexed after lmms-eval's own tasks
(which therefore keep priority: no built-in task is changed or hidden).

If a future lmms-eval changes what this relies on, :func:`register` logs an error that says so and
names the stable fallback (``--include_path "$(siuo tasks-path)"``); it never fails silently.
"""

from __future__ import annotations

import functools
import inspect

from .paths import lmms_eval_tasks_dir

_MARK = "__siuo_task_wrapped__"


def _fallback_hint() -> str:
    return f'use --include_path "{lmms_eval_tasks_dir()}" (printed by `siuo tasks-path`) instead'


def install_task_path() -> bool:
    """Wrap ``TaskManager.initialize_tasks`` once; return whether the SIUO folder is now indexed."""
    from loguru import logger

    try:
        from lmms_eval.tasks import TaskManager
    except Exception as exc:  # pragma: no cover - lmms-eval missing or broken
        logger.error(f"siuo-task: could not import lmms_eval.tasks.TaskManager ({exc}); {_fallback_hint()}")
        return False
    original = getattr(TaskManager, "initialize_tasks", None)
    if original is None or "include_path" not in inspect.signature(original).parameters:
        logger.error(
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
    """Entry point of the ``lmms_eval.models`` group: registers the SIUO task folder, no model."""
    install_task_path()
    return []
