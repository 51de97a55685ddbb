"""Where each harness's task YAMLs live: ``siuo_task/harnesses/<harness>/tasks/siuo`` (one folder per
harness: each misreads the other's keys). They are package data, installed with the package."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def lmms_eval_tasks_dir() -> Path:
    """The folder to pass to ``lmms-eval --include_path``."""
    return _HERE / "lmms_eval" / "tasks"


def lm_eval_tasks_dir() -> Path:
    """The folder to pass to ``lm_eval --include_path``."""
    return _HERE / "lm_eval" / "tasks"
