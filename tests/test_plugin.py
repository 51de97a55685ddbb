"""The discovery hook is small, idempotent, and fails loudly (naming the fallback) if lmms-eval changes.

The tests that run lmms-eval's own task index in-process (the ``lmms_tasks`` fixture: importing it
takes seconds) are in the e2e tier, as the doctor's are; the pure ones are fast."""

import importlib.metadata

import pytest

from siuo_task.harnesses.lmms_eval import plugin as lmms_eval_plugin
from siuo_task.harnesses.paths import lmms_eval_tasks_dir

from .conftest import fake_host_tasks

in_process = pytest.mark.e2e  # imports lmms-eval's task index (the harness, in-process)


@in_process
def test_entry_point_is_registered():  # register() imports lmms-eval's task index
    eps = [ep for ep in importlib.metadata.entry_points(group="lmms_eval.models") if ep.name == "siuo_task"]
    assert len(eps) == 1 and eps[0].value == "siuo_task.harnesses.lmms_eval.plugin:register"
    assert eps[0].load()() == []  # registers no model


@in_process
def test_wrapper_appends_the_siuo_folder_once(lmms_tasks, monkeypatch):
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


@in_process
def test_changed_lmms_eval_is_reported_not_silent(lmms_tasks, monkeypatch):
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


@in_process
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


# ------------------------------------------------------------------ shadowing: a host task named like SIUO's


def _manager_and_logs(lmms_tasks, level="WARNING"):
    from loguru import logger

    messages = []
    handler = logger.add(lambda m: messages.append(str(m)), level=level)
    try:
        manager = lmms_tasks.TaskManager("ERROR")
    finally:
        logger.remove(handler)
    return manager, messages


def _ours(name):
    return str(lmms_eval_tasks_dir() / "siuo" / f"{name}.yaml")


@in_process
def test_a_host_task_named_like_siuos_is_an_error_naming_both_and_the_switch(lmms_tasks, host_with_siuo_task):
    manager, messages = _manager_and_logs(lmms_tasks)
    host_yaml = str(host_with_siuo_task / "siuo" / "siuo_gen.yaml")
    # lmms-eval's own priority is kept (nothing of the host is hidden) ...
    assert manager.task_index["siuo_gen"]["yaml_path"] == host_yaml
    assert manager.task_index["siuo_mcqa"]["yaml_path"] == _ours("siuo_mcqa") and "other_task" in manager.all_tasks
    # ... but said loudly: both sources and how to choose
    errors = [m for m in messages if "ERROR" in m]
    assert len(errors) == 1, messages
    assert host_yaml in errors[0] and _ours("siuo_gen") in errors[0] and "siuo_gen" in errors[0]
    assert "SIUO_TASK_SOURCE=siuo-task" in errors[0] and "SIUO_TASK_SOURCE=host" in errors[0]
    assert manager.siuo_task_shadowing == {"choice": None, "clashes": {"siuo_gen": {"host": host_yaml, "siuo-task": _ours("siuo_gen")}}}


@in_process
def test_siuo_task_source_chooses_siuo_task(lmms_tasks, host_with_siuo_task, monkeypatch):
    monkeypatch.setenv(lmms_eval_plugin.ENV_TASK_SOURCE, "siuo-task")
    manager, messages = _manager_and_logs(lmms_tasks, "INFO")
    assert manager.task_index["siuo_gen"]["yaml_path"] == _ours("siuo_gen")
    assert not [m for m in messages if "ERROR" in m or "WARNING" in m]
    assert any("SIUO_TASK_SOURCE=siuo-task" in m and str(host_with_siuo_task) in m for m in messages)
    assert manager.siuo_task_shadowing["choice"] == "siuo-task"


@in_process
def test_siuo_task_source_host_keeps_the_host_task_with_a_warning(lmms_tasks, host_with_siuo_task, monkeypatch):
    monkeypatch.setenv(lmms_eval_plugin.ENV_TASK_SOURCE, "host")
    manager, messages = _manager_and_logs(lmms_tasks)
    assert manager.task_index["siuo_gen"]["yaml_path"] == str(host_with_siuo_task / "siuo" / "siuo_gen.yaml")
    assert not [m for m in messages if "ERROR" in m]
    assert any("WARNING" in m and "SIUO_TASK_SOURCE=host" in m and "not siuo-task's" in m for m in messages)


@in_process
def test_an_unknown_task_source_is_an_error_and_changes_nothing(lmms_tasks, host_with_siuo_task, monkeypatch):
    monkeypatch.setenv(lmms_eval_plugin.ENV_TASK_SOURCE, "mine")
    manager, messages = _manager_and_logs(lmms_tasks)
    assert manager.task_index["siuo_gen"]["yaml_path"] == str(host_with_siuo_task / "siuo" / "siuo_gen.yaml")
    assert any("SIUO_TASK_SOURCE='mine'" in m and "siuo-task, host" in m for m in messages if "ERROR" in m)


@in_process
def test_no_clash_no_message(lmms_tasks, tmp_path, monkeypatch):
    folder = fake_host_tasks(tmp_path, names=())
    monkeypatch.setattr(lmms_tasks, "__file__", str(folder / "__init__.py"))
    original = lmms_tasks.TaskManager.initialize_tasks
    monkeypatch.setattr(lmms_tasks.TaskManager, "initialize_tasks", getattr(original, "__wrapped__", original))
    monkeypatch.delenv(lmms_eval_plugin.ENV_TASK_SOURCE, raising=False)
    lmms_eval_plugin.register()
    manager, messages = _manager_and_logs(lmms_tasks)
    assert messages == [] and manager.siuo_task_shadowing == {"choice": None, "clashes": {}}
    assert {n: manager.task_index[n]["yaml_path"] for n in ("siuo", "siuo_gen")} == {n: _ours(n) for n in ("siuo", "siuo_gen")}


@in_process
def test_a_failing_shadowing_check_never_breaks_the_index(lmms_tasks, host_with_siuo_task, monkeypatch):
    """If the check itself fails (a changed lmms-eval), the index lmms-eval built is used as is and the
    failure is logged."""

    def broken(index, ours):
        raise RuntimeError("simulated scanner change")

    monkeypatch.setattr(lmms_eval_plugin, "find_clashes", broken)
    manager, messages = _manager_and_logs(lmms_tasks)
    assert "siuo_mcqa" in manager.all_tasks and "other_task" in manager.all_tasks
    assert manager.task_index["siuo_gen"]["yaml_path"] == str(host_with_siuo_task / "siuo" / "siuo_gen.yaml")
    assert any("simulated scanner change" in m and "ERROR" in m for m in messages)


def test_the_same_folder_through_a_link_is_no_clash(tmp_path, monkeypatch):
    """``--include_path`` naming SIUO's own folder by another path (a symlink) is the same source."""
    link = tmp_path / "linked_tasks"
    link.symlink_to(lmms_eval_tasks_dir(), target_is_directory=True)
    ours = {"siuo_gen": {"type": "task", "yaml_path": _ours("siuo_gen")}}
    index = {"siuo_gen": {"type": "task", "yaml_path": str(link / "siuo" / "siuo_gen.yaml")}}
    assert lmms_eval_plugin.find_clashes(index, ours) == {}
    index["siuo_gen"]["yaml_path"] = str(tmp_path / "elsewhere.yaml")
    assert set(lmms_eval_plugin.find_clashes(index, ours)) == {"siuo_gen"}
    tag = {"siuo_gen": {"type": "tag", "task": ["a", "b"]}}  # an entry without a file of its own
    assert "a tag of lmms-eval's task index" in lmms_eval_plugin.find_clashes(tag, ours)["siuo_gen"]["host"]
