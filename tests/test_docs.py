"""The user-facing documents stay true: the README is a user guide of at most 12 KB that starts
with the two commands, every relative link resolves, every judge variable the code reads is
documented, and the license and citation files are there."""

import re

import pytest

from siuo_task import __version__
from siuo_task.core.schema import PROTOCOL_VERSION

from .conftest import REPO

DOCS = [REPO / "README.md", REPO / "PROTOCOL.md", REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]


def test_readme_is_a_short_user_guide_that_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 12 * 1024
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert block[0].startswith("bash scripts/setup.sh && .venv/bin/lmms-eval ") and "--tasks siuo" in block[0]
    assert block[1] == "bash scripts/setup.sh --test && .venv/bin/python -m pytest -q"
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/setup.sh --test" in ci and ".venv/bin/python -m pytest -q" in ci  # CI runs what the README says
    for heading in ("## Install", "## Running it", "## The judge", "## What the numbers mean", "## Citation", "## License"):
        assert heading in text, heading


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    text = re.sub(r"```.*?```|`[^`\n]*`", "", doc.read_text(encoding="utf-8"), flags=re.S)  # code is not a link
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{doc.name}: link to {target} does not resolve"


def test_every_variable_the_code_reads_is_documented():
    code = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "siuo_task").rglob("*.py"))
    names = set(re.findall(r"\"(SIUO_[A-Z_]+)\"", code))
    assert len(names) > 15
    documented = "".join(p.read_text(encoding="utf-8") for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    assert sorted(n for n in names if n not in documented) == []


def test_license_citation_and_changelog():
    assert (REPO / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    cff = (REPO / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(rf"^version: {re.escape(__version__)}$", cff, re.M) and "preferred-citation:" in cff and "2406.15279" in cff
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {__version__} — SIUO protocol {PROTOCOL_VERSION}" in changelog
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert f'version = "{__version__}"' in pyproject
