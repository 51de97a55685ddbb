"""The 0.1 import paths keep working for one release, each with a deprecation warning naming the
new home: users' copies of the task YAMLs name ``siuo_task.lm_eval_adapter.*`` (lm-eval) and
import ``siuo_task.lmms_eval_adapter`` (lmms-eval's utils.py)."""

import importlib
import subprocess
import sys

import pytest

from siuo_task import _compat

from .conftest import PYTHON


def _fresh_import(name):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(_compat.MOVED))
def test_every_old_module_path_resolves_with_a_warning(old):
    new = _compat.MOVED[old]
    with pytest.warns(_compat.SIUODeprecationWarning, match=rf"siuo_task\.{old} is deprecated .*siuo-task 0\.3"):
        module = _fresh_import(f"siuo_task.{old}")
    if isinstance(new, tuple):  # split in several modules: every public name of each is there
        for part in new:
            real = importlib.import_module(f"siuo_task.{part}")
            for name in (n for n in vars(real) if not n.startswith("_")):
                assert getattr(module, name) is getattr(real, name), (old, part, name)
    else:
        assert module is importlib.import_module(f"siuo_task.{new}")  # the same module object: patching one patches both
        assert module.__spec__.name == f"siuo_task.{new}"  # its own spec, not the alias's


def test_old_yaml_hook_names_resolve():
    """What a 0.1 YAML copy names: lm-eval's ``!function siuo_task.lm_eval_adapter.gen_dataset`` and
    lmms-eval's ``from siuo_task.lmms_eval_adapter import gen_process_docs``."""
    with pytest.warns(_compat.SIUODeprecationWarning):
        lm = _fresh_import("siuo_task.lm_eval_adapter")
    from siuo_task.harnesses.lm_eval import hooks as lm_hooks
    from siuo_task.harnesses.lmms_eval import hooks as lmms_hooks

    assert lm.gen_dataset is lm_hooks.gen_dataset and lm.aggregate_safe is lm_hooks.aggregate_safe
    with pytest.warns(_compat.SIUODeprecationWarning):
        lmms = _fresh_import("siuo_task.lmms_eval_adapter")
    assert lmms.gen_process_docs is lmms_hooks.gen_process_docs and lmms.aggregate_accuracy is lmms_hooks.aggregate_accuracy


def test_warning_is_shown_by_default():
    """FutureWarning-based: shown without -W flags, since a user's YAML copy is not their own code."""
    proc = subprocess.run([PYTHON, "-c", "import siuo_task.lm_eval_adapter"], capture_output=True, text=True, check=True)
    assert "SIUODeprecationWarning" in proc.stderr and "siuo_task.harnesses.lm_eval.hooks" in proc.stderr


def test_unknown_names_are_not_aliased():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("siuo_task.no_such_module")
