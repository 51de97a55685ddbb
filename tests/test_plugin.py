"""The discovery hook is small, idempotent, and fails loudly (naming the fallback) if lmms-eval changes."""

import importlib.metadata

import pytest

lmms_tasks = pytest.importorskip("lmms_eval.tasks")

from siuo_task.harnesses.lmms_eval import plugin as lmms_eval_plugin  # noqa: E402
from siuo_task.harnesses.paths import lmms_eval_tasks_dir  # noqa: E402


def test_entry_point_is_registered():
    eps = [ep for ep in importlib.metadata.entry_points(group="lmms_eval.models") if ep.name == "siuo_task"]
    assert len(eps) == 1 and eps[0].value == "siuo_task.harnesses.lmms_eval.plugin:register"
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


def _errors(fn):
    from loguru import logger

    messages = []
    handler = logger.add(lambda m: messages.append(str(m)), level="ERROR")
    try:
        result = fn()
    finally:
        logger.remove(handler)
    return result, messages


def test_register_never_raises_into_lmms_evals_plugin_loop(monkeypatch):
    """A failure inside register() is logged with the fallback; lmms-eval's loop goes on to the next plugin."""
    def broken():
        raise RuntimeError("simulated breakage")

    monkeypatch.setattr(lmms_eval_plugin, "install_task_path", broken)
    result, messages = _errors(lmms_eval_plugin.register)
    assert result == []
    assert len(messages) == 1 and "simulated breakage" in messages[0]
    assert '--include_path "$(siuo tasks-path)"' in messages[0] and str(lmms_eval_tasks_dir()) in messages[0]

    # lmms-eval's own entry-point loop (registry_v2) with this plugin failing inside: no exception
    registry_v2 = pytest.importorskip("lmms_eval.models.registry_v2")
    registry = registry_v2.ModelRegistryV2()
    _, messages = _errors(lambda: registry.load_entrypoint_manifests(overwrite=True))
    assert any("simulated breakage" in m for m in messages)


def test_entry_point_support_is_read_from_the_source(tmp_path, monkeypatch):
    import importlib.util
    from types import SimpleNamespace

    assert lmms_eval_plugin.entry_point_support()[0] is True  # this environment's lmms-eval (>= 0.6)
    old = tmp_path / "lmms_eval"
    (old / "models").mkdir(parents=True)
    (old / "models" / "__init__.py").write_text('if os.environ.get("LMMS_EVAL_PLUGINS", None):\n    pass\n')  # 0.5.x's shape
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: SimpleNamespace(submodule_search_locations=[str(old)]))
    supported, reason = lmms_eval_plugin.entry_point_support()
    assert supported is False and "entry-point group" in reason and "0.6.0" in reason
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert lmms_eval_plugin.entry_point_support()[0] is None


def test_tasks_path_warns_where_discovery_cannot_work(monkeypatch, capsys):
    from siuo_task.cli import main

    monkeypatch.setattr(lmms_eval_plugin, "entry_point_support", lambda: (False, "lmms-eval 0.5.0 does not load the group"))
    assert main(["tasks-path"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(lmms_eval_tasks_dir())  # stdout stays usable in $(...)
    assert "0.5.0 does not load the group" in captured.err and "--include_path" in captured.err
