"""The package's shape, enforced: imports only point down (import-linter's contracts in
pyproject.toml), ruff's lint and format hold, nothing outside the tests imports them, no module
over 500 lines without its reason, and the dev-only helpers stay out of the wheel's code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CODE_DIRS = ("siuo_task", "siuo_dev", "scripts", "benchmarks")
MAX_LINES = 500
# a module over MAX_LINES says why in its docstring, on a line starting with this
OVERSIZE_REASON = "Over 500 lines:"


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}: install the test extra (bash scripts/setup.sh --test)")
    return str(path)


def _python_files(*dirs: str):
    for folder in dirs:
        yield from sorted((REPO / folder).rglob("*.py"))


def _imported_modules(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_import_contracts_hold():
    """core imports nothing above it; the judge only the core; results and harnesses never each other;
    results never the judge's client, transport or retry (pyproject.toml [tool.importlinter])."""
    run = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_ruff_lint_and_format_hold():
    ruff = _tool("ruff")
    lint = subprocess.run([ruff, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout[-4000:] + lint.stderr[-2000:]
    fmt = subprocess.run([ruff, "format", "--check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert fmt.returncode == 0, "run `ruff format .`:\n" + fmt.stdout[-4000:] + fmt.stderr[-2000:]


def importers(paths, package: str) -> list:
    """``"file: module"`` for each import of ``package`` (or a module in it) in ``paths``."""
    return [
        f"{path.name}: {module}"
        for path in paths
        for module in _imported_modules(path)
        if module == package or module.startswith(package + ".")
    ]


def oversized(paths) -> list:
    """The modules over :data:`MAX_LINES` lines whose docstring gives no reason."""
    too_long = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if not any(line.startswith(OVERSIZE_REASON) for line in doc.splitlines()):
            too_long.append(f"{path} ({lines} lines)")
    return too_long


def test_nothing_outside_the_tests_imports_them():
    """tests/ is not a library: helpers shared by tests, benchmarks and the GPU check live in siuo_dev/."""
    assert importers(_python_files(*CODE_DIRS), "tests") == []


def test_the_package_never_imports_the_dev_helpers():
    """siuo_dev/ is not in the wheel: the package works without it."""
    assert importers(_python_files("siuo_task"), "siuo_dev") == []


def test_no_module_over_500_lines_without_its_reason():
    found = oversized(_python_files(*CODE_DIRS))
    assert found == [], f"split these, or say why they are one job on a docstring line starting {OVERSIZE_REASON!r}"


def test_the_checks_see_a_violation(tmp_path):
    body = "x = 1\n" * (MAX_LINES + 1)
    bad = tmp_path / "bad.py"
    bad.write_text('"""A module."""\nfrom tests.conftest import REPO\nimport siuo_dev.testing\n' + body, encoding="utf-8")
    reasoned = tmp_path / "reasoned.py"
    reasoned.write_text(f'"""A module.\n\n{OVERSIZE_REASON} one job.\n"""\nimport testsuite\n' + body, encoding="utf-8")
    assert importers([bad, reasoned], "tests") == ["bad.py: tests.conftest"]
    assert importers([bad, reasoned], "siuo_dev") == ["bad.py: siuo_dev.testing"]
    assert oversized([bad, reasoned]) == [f"{bad} ({MAX_LINES + 4} lines)"]
