"""The discovery hook is small, idempotent, and fails loudly (naming the fallback) if lmms-eval changes."""

import importlib.metadata

import pytest

lmms_tasks = pytest.importorskip("lmms_eval.tasks")

from siuo_task import lmms_eval_plugin  # noqa: E402
from siuo_task.paths import lmms_eval_tasks_dir  # noqa: E402


def test_entry_point_is_registered():
    eps = [ep for ep in importlib.metadata.entry_points(group="lmms_eval.models") if ep.name == "siuo_task"]
    assert len(eps) == 1 and eps[0].value == "siuo_task.lmms_eval_plugin:register"
    assert eps[0].load()() == []  # registers no model


def test_wrapper_appends_the_siuo_folder_once(monkeypatch):
    seen = []

    def initialize_tasks(self, include_path=None, include_defaults=True):
        seen.append((include_path, include_defaults))
        return {}

    monkeypatch.setattr(lmms_tasks.TaskManager, "initialize_tasks", initialize_tasks)
    assert lmms_eval_plugin.install_task_path()
    assert lmms_eval_plugin.install_task_path()  # idempotent
    wrapped = lmms_tasks.TaskManager.initialize_tasks
    wrapped(None)
    wrapped(None, include_path="/mine")
    wrapped(None, include_path=["/a", str(lmms_eval_tasks_dir())])
    wrapped(None, include_path=None, include_defaults=False)
    folder = str(lmms_eval_tasks_dir())
    assert seen == [([folder], True), (["/mine", folder], True), (["/a", folder], True), (None, False)]


def test_changed_lmms_eval_is_reported_not_silent(monkeypatch):
    messages = []
    from loguru import logger

    handler = logger.add(lambda m: messages.append(str(m)), level="ERROR")
    try:
        monkeypatch.setattr(lmms_tasks.TaskManager, "initialize_tasks", lambda self, paths=None: {})
        assert lmms_eval_plugin.install_task_path() is False
    finally:
        logger.remove(handler)
    assert any("not registered automatically" in m and "--include_path" in m and str(lmms_eval_tasks_dir()) in m for m in messages)
