import os
import shutil
from pathlib import Path

import pytest

from siuo_dev.testing import JUDGE_VARIABLES, PYTHON, build_data_dir, find_release_json, harness_env  # noqa: F401 (PYTHON, harness_env: for the tests)

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_BUGS_ENV = "SIUO_RUN_UPSTREAM_BUGS"


def pytest_addoption(parser):
    parser.addoption(
        "--run-upstream-bugs",
        action="store_true",
        default=False,
        help=f"also run the tests that only document harness bugs (marker upstream_bugs; or {UPSTREAM_BUGS_ENV}=1)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-upstream-bugs") or os.environ.get(UPSTREAM_BUGS_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"documents a harness bug only: run with --run-upstream-bugs or {UPSTREAM_BUGS_ENV}=1")
    for item in items:
        if "upstream_bugs" in item.keywords:
            item.add_marker(skip)


RELEASE = find_release_json()
needs_data = pytest.mark.skipif(RELEASE is None, reason="SIUO release JSON not found: provide ../shared/siuo or set SIUO_DATA_DIR")


@pytest.fixture(scope="session")
def release_dir():
    if RELEASE is None:
        pytest.skip("SIUO release JSON not found: provide ../shared/siuo or set SIUO_DATA_DIR")
    return RELEASE


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, release_dir):
    """A complete local data directory (release JSON + placeholder PNGs), built once per session."""
    return build_data_dir(tmp_path_factory.mktemp("siuo_data"), release_dir)


@pytest.fixture
def fresh_data_dir(tmp_path, data_dir):
    """A data directory a test may damage (a copy of the session's: copying is faster than drawing)."""
    return Path(shutil.copytree(data_dir, tmp_path / "data"))


@pytest.fixture
def clean_env(monkeypatch):
    """No SIUO_/OPENAI_ settings nor lmms-eval's judge variables from the caller's environment leak into a test."""
    for key in list(os.environ):
        if key.startswith(("SIUO_", "OPENAI_", "AZURE_")) or key in JUDGE_VARIABLES:
            monkeypatch.delenv(key, raising=False)
    return monkeypatch


# ------------------------------------------------------------------ lmms-eval's task index, in-process


@pytest.fixture
def lmms_tasks():
    """``lmms_eval.tasks`` (seconds to import: only the tests that use it pay for it)."""
    return pytest.importorskip("lmms_eval.tasks")


def fake_host_tasks(tmp_path, names=("siuo_gen",)):
    """A stand-in for lmms-eval's own tasks folder holding tasks named like SIUO's (and one other)."""
    folder = tmp_path / "lmms_eval" / "tasks"
    (folder / "siuo").mkdir(parents=True)
    for name in names:
        (folder / "siuo" / f"{name}.yaml").write_text(f"task: {name}\ndataset_path: someone/else\noutput_type: generate_until\n")
    (folder / "other").mkdir()
    (folder / "other" / "other.yaml").write_text("task: other_task\ndataset_path: x\noutput_type: generate_until\n")
    return folder


@pytest.fixture
def host_with_siuo_task(tmp_path, monkeypatch, lmms_tasks):
    """lmms-eval's TaskManager indexing the fake folder as its built-in tasks, with the SIUO wrapper installed."""
    from siuo_task.harnesses.lmms_eval import plugin as lmms_eval_plugin

    folder = fake_host_tasks(tmp_path)
    monkeypatch.setattr(lmms_tasks, "__file__", str(folder / "__init__.py"))
    original = lmms_tasks.TaskManager.initialize_tasks
    monkeypatch.setattr(lmms_tasks.TaskManager, "initialize_tasks", getattr(original, "__wrapped__", original))
    monkeypatch.delenv(lmms_eval_plugin.ENV_TASK_SOURCE, raising=False)
    assert lmms_eval_plugin.register() == []
    return folder
