"""A plain (non-editable) install carries the task YAMLs and the lmms-eval and inspect_ai entry points."""

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from siuo_dev.testing import build_wheel

from .conftest import PYTHON, REPO

pytestmark = pytest.mark.e2e  # builds and installs a wheel


def test_wheel_carries_tasks_and_entry_point(tmp_path):
    before = sorted(p.name for p in REPO.iterdir())
    wheel = build_wheel(tmp_path)
    assert sorted(p.name for p in REPO.iterdir()) == before  # the build leaves the checkout as it was
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "siuo_mcqa.yaml",
        "siuo_gen.yaml",
        "siuo_gen_vote3.yaml",
        "siuo.yaml",
        "_default_template_yaml",
        "utils.py",
        "placeholder.jsonl",
    ):
        assert f"siuo_task/harnesses/lmms_eval/tasks/siuo/{name}" in names, name
    assert any(n.startswith("siuo_task/harnesses/lm_eval/tasks/siuo/") and n.endswith(".yaml") for n in names)
    assert not any(n.startswith(("siuo_dev/", "tests/", "benchmarks/", "scripts/")) for n in names)  # dev-only code stays out
    assert not any(n.endswith(("siuo_gen.json", "siuo_mcqa.json")) for n in names)  # the data is never shipped
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[lmms_eval.models]" in entry_points and "siuo_task.harnesses.lmms_eval.plugin:register" in entry_points
    assert "siuo = siuo_task.cli:main" in entry_points
    # inspect loads the entry point named after the task prefix (siuo_task/siuo_gen) from its group
    assert "[inspect_ai]" in entry_points and "siuo_task = siuo_task.harnesses.inspect_ai.registry" in entry_points
    assert "siuo_task/harnesses/inspect_ai/registry.py" in names
    # installed as plain files, the package finds its task folders
    target = tmp_path / "site"
    subprocess.run([PYTHON, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=str(target))
    code = "from siuo_task.harnesses.paths import lmms_eval_tasks_dir, lm_eval_tasks_dir; print(lmms_eval_tasks_dir()); print(lm_eval_tasks_dir())"
    out = subprocess.run([PYTHON, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert (
        Path(out[0]) == target / "siuo_task" / "harnesses" / "lmms_eval" / "tasks" and (Path(out[0]) / "siuo" / "siuo_mcqa.yaml").is_file()
    )
    assert Path(out[1]) == target / "siuo_task" / "harnesses" / "lm_eval" / "tasks"
    # the 0.1 import paths users' YAML copies name still resolve from the installed wheel, with a warning
    code = (
        "import warnings; warnings.simplefilter('error'); import siuo_task\n"
        "try:\n    import siuo_task.lm_eval_adapter\nexcept Warning as w:\n    print(type(w).__name__, w)"
    )
    out = subprocess.run([PYTHON, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.startswith("SIUODeprecationWarning") and "siuo_task.harnesses.lm_eval.hooks" in out, out


def test_task_yaml_names_its_placeholder_by_absolute_path(tmp_path, monkeypatch):
    """lmms-eval before 0.7.3 resolves a relative data_files path against the working directory, not
    the YAML's folder: the template gets an absolute one from utils.py, whatever the directory."""
    import pytest

    lmms_utils = pytest.importorskip("lmms_eval.utils")
    from siuo_task.harnesses.paths import lmms_eval_tasks_dir

    monkeypatch.chdir(tmp_path)
    for task in ("siuo_mcqa", "siuo_gen", "siuo_gen_vote3"):
        config = lmms_utils.load_yaml_config(str(lmms_eval_tasks_dir() / "siuo" / f"{task}.yaml"), mode="full")
        assert config["dataset_path"] == "json"
        placeholder = Path(config["dataset_kwargs"]["data_files"]["test"])
        assert placeholder.is_absolute() and placeholder == lmms_eval_tasks_dir() / "siuo" / "placeholder.jsonl", placeholder
        assert placeholder.is_file()
