"""Which task-listing commands show SIUO's tasks (lmms-eval 0.7.3, this environment; 0.6.1: test_stacks.py).

The eval command (``lmms-eval --tasks list``, ``python -m lmms_eval --tasks list``) loads the
entry-point plugins before it builds the task index, so SIUO is listed. lmms-eval 0.7's ``tasks``
subcommand builds its index without them: SIUO is missing unless ``--include-path`` names its folder.
The README and ``siuo doctor`` give the first command (:data:`plugin.LISTING`); if lmms-eval one day
lists plugins in its subcommand too, the last assertion fails and the advice can be simplified.
"""

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from siuo_task.harnesses.lmms_eval.plugin import LISTING
from siuo_task.harnesses.paths import lmms_eval_tasks_dir

from .conftest import PYTHON, harness_env

pytestmark = pytest.mark.e2e
SIUO_NAMES = {"siuo", "siuo_gen", "siuo_gen_vote3", "siuo_mcqa"}
LMMS_EVAL = str(Path(PYTHON).with_name("lmms-eval"))


def listed(output: str) -> set:
    """SIUO task names printed as list entries (``- name`` of the eval command, ``  name`` of the subcommand)."""
    return {m for m in re.findall(r"^\s*(?:- )?(siuo\w*)\s*$", re.sub(r"\x1b\[[0-9;]*m", "", output), re.M)}


def test_listing_commands():
    assert LISTING == "lmms-eval --tasks list"
    commands = {
        "console script": [LMMS_EVAL, "--tasks", "list"],
        "module": [PYTHON, "-m", "lmms_eval", "--tasks", "list"],
        "0.7 subcommand": [LMMS_EVAL, "tasks", "list"],
        "0.7 subcommand with the folder": [LMMS_EVAL, "tasks", "list", "--include-path", str(lmms_eval_tasks_dir())],
    }

    def run(cmd):
        return subprocess.run(cmd, env=harness_env(), capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        procs = dict(zip(commands, pool.map(run, commands.values())))
    for name, proc in procs.items():
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
    out = {name: listed(proc.stdout + proc.stderr) for name, proc in procs.items()}
    assert out["console script"] == out["module"] == SIUO_NAMES
    assert out["0.7 subcommand with the folder"] == SIUO_NAMES
    assert out["0.7 subcommand"] == set()  # no plugins loaded there (see the module doc)
