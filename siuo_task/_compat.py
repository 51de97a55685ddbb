"""Old import paths (siuo-task 0.1), kept for one release with a deprecation warning.

Users' copies of the task YAMLs name ``siuo_task.lm_eval_adapter.*`` (lm-eval) and import
``siuo_task.lmms_eval_adapter`` (lmms-eval's ``utils.py``); scripts may import the other old
modules. Each old name resolves to the very module that replaced it (same object, so patching
either name patches both) and warns once with the new name. Removed in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module (under siuo_task) -> its home since 0.2
MOVED = {
    "data": "core.data",
    "prompts": "core.prompts",
    "mcqa": "core.mcqa",
    "verdicts": "core.verdicts",
    "metrics": "core.metrics",
    "stats": "core.stats",
    "schema": "core.schema",
    "scoring": "core.scoring",
    "harness_common": ("harnesses.call", "harnesses.records", "harnesses.session"),
    "paths": "harnesses.paths",
    "lmms_eval_adapter": "harnesses.lmms_eval.hooks",
    "lmms_eval_plugin": "harnesses.lmms_eval.plugin",
    "lm_eval_adapter": "harnesses.lm_eval.hooks",
    "results_io": "results.io",
    "verify": "results.verify",
    "compare": "results.compare",
    "agree": "results.agree",
    "export": "results.export",
    "report": "results.report.model",
    "report_figures": "results.report.figures",
    "report_render": "results.report.render",
    "verify_cli": "cli.verify",
    "report_cli": "cli.report",
    "doctor": "cli.doctor",
}


class SIUODeprecationWarning(FutureWarning):
    """An old siuo-task import path (shown by default: users' YAML copies are not their own code)."""


class _Alias(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target
        self._spec = None

    def create_module(self, spec):
        if isinstance(self.target, tuple):  # a module split in several: None -> a fresh module, filled below
            return None
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        if isinstance(self.target, tuple):
            for name in self.target:
                module.__dict__.update({k: v for k, v in vars(importlib.import_module(name)).items() if not k.startswith("__")})
            return
        module.__spec__ = self._spec  # the import system set the alias's spec on the real module: put its own back


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        package, _, leaf = fullname.rpartition(".")
        if package != __package__ or leaf not in MOVED:
            return None
        moved = MOVED[leaf]
        new = tuple(f"{__package__}.{m}" for m in moved) if isinstance(moved, tuple) else f"{__package__}.{moved}"
        shown = " / ".join(new) if isinstance(new, tuple) else new
        warnings.warn(f"{fullname} is deprecated and will be removed in siuo-task 0.3: use {shown}", SIUODeprecationWarning, stacklevel=2)
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
