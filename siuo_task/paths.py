"""Where the installed task YAMLs live (one folder per harness: each misreads the other's keys)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"siuo-task is not installed correctly: package {name} not found (reinstall with `pip install .`)")
    return Path(list(spec.submodule_search_locations)[0])


def lmms_eval_tasks_dir() -> Path:
    """The folder to pass to ``lmms-eval --include_path``."""
    return _package_dir("siuo_task.yaml_tasks") / "lmms_eval"


def lm_eval_tasks_dir() -> Path:
    """The folder to pass to ``lm_eval --include_path``."""
    return _package_dir("siuo_task.yaml_tasks") / "lm_eval"
