"""Where the task YAMLs live (one folder per harness: each misreads the other's keys).

Installed, they are package data (``siuo_task.yaml_tasks``); run from a source checkout without
an install, they are the checkout's ``yaml_tasks/`` folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _yaml_root() -> Path:
    spec = importlib.util.find_spec("siuo_task.yaml_tasks")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    checkout = Path(__file__).resolve().parents[1] / "yaml_tasks"
    if (checkout / "lmms_eval").is_dir():
        return checkout
    raise RuntimeError("siuo-task is not installed correctly: its task YAMLs (siuo_task.yaml_tasks) are missing; reinstall with `pip install .`")


def lmms_eval_tasks_dir() -> Path:
    """The folder to pass to ``lmms-eval --include_path``."""
    return _yaml_root() / "lmms_eval"


def lm_eval_tasks_dir() -> Path:
    """The folder to pass to ``lm_eval --include_path``."""
    return _yaml_root() / "lm_eval"
