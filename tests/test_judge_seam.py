"""The judge seam: the scoring core declares what it needs (``siuo_task.core.judging``) and imports
nothing else of the package; the endpoint is resolved once (``siuo_task.judge.endpoint``) and read
everywhere else; the judge's modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import siuo_task
from siuo_task.core import judging, scoring
from siuo_task.judge import Endpoint, Judge, JudgeClient, JudgeConfig, JudgeReply, JudgeRequest
from siuo_task.judge.endpoint import resolve

PACKAGE = Path(siuo_task.__file__).parent


def _imports(path: Path) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.add("." * node.level + (node.module or ""))
    return found


def test_core_imports_nothing_else_of_the_package():
    for path in sorted((PACKAGE / "core").glob("*.py")):
        outside = {m for m in _imports(path) if m.startswith("siuo_task") and not m.startswith("siuo_task.core") and m != "siuo_task"}
        assert not outside, f"{path.name} imports {sorted(outside)}"
    assert not any(m.startswith("..") for p in (PACKAGE / "core").glob("*.py") for m in _imports(p))


def test_the_judge_imports_no_harness_result_or_cli_code():
    for path in sorted((PACKAGE / "judge").glob("*.py")):
        above = {m for m in _imports(path) if m.startswith(("siuo_task.harnesses", "siuo_task.results", "siuo_task.cli"))}
        assert not above, f"judge/{path.name} imports {sorted(above)}"


def test_the_judge_names_are_the_core_ones():
    assert (JudgeRequest, JudgeReply, Judge) == (judging.JudgeRequest, judging.JudgeReply, judging.Judge)
    assert scoring.JudgeRequest is judging.JudgeRequest


def test_the_client_is_a_judge():
    with JudgeClient(JudgeConfig(cache_dir="off", max_error_rate=0.2)) as client:
        assert isinstance(client, Judge) and client.max_error_rate == 0.2
        assert set(client.provenance()) >= {"model", "endpoint_host", "decoding", "usage"}


def test_no_module_of_the_judge_is_over_500_lines():
    for path in sorted((PACKAGE / "judge").glob("*.py")) + [PACKAGE / "core" / "judging.py"]:
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 500, path.name


def test_the_endpoint_kind_is_derived_in_one_place():
    """Only endpoint.py asks which API a URL is; everyone else reads Endpoint.kind."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "endpoint.py" or path.parent.name == "judge" and path.name == "__init__.py":
            continue
        text = path.read_text(encoding="utf-8")
        for name in ("is_azure(", "is_openai_api(", "kind_of("):
            assert name not in text, f"{path.relative_to(PACKAGE)} derives the endpoint kind again ({name})"


@pytest.mark.parametrize(
    "url, kind, header, deployments, version",
    [
        ("https://api.openai.com/v1", "openai", "Authorization", False, None),
        ("https://eu.api.openai.com/v1", "openai", "Authorization", False, None),
        ("http://api.openai.com/v1", "other", "Authorization", False, None),  # not OpenAI's API without TLS
        ("http://127.0.0.1:8000/v1", "other", "Authorization", False, None),
        ("https://res.openai.azure.com/openai/deployments/judge?api-version=2024-06-01", "azure", "api-key", True, "2024-06-01"),
        ("https://res.cognitiveservices.azure.com/openai", "azure", "api-key", True, "2024-10-21"),
        ("https://res.services.ai.azure.com/openai/v1", "azure", "api-key", False, None),
    ],
)
def test_endpoint_resolution(url, kind, header, deployments, version):
    ep = resolve(url, "sk-resolve-KEY-1", key_source="SIUO_JUDGE_API_KEY", url_source="SIUO_JUDGE_BASE_URL")
    assert isinstance(ep, Endpoint)
    assert (ep.kind, ep.auth_header, ep.azure_deployments, ep.api_version) == (kind, header, deployments, version)
    assert "?" not in ep.url and "api-version" not in ep.url and ep.problem is None
    assert "sk-resolve-KEY-1" not in repr(ep) and "sk-resolve-KEY-1" not in ep.auth
    assert resolve(url).auth_header is None and resolve(url).auth == "no key"


def test_endpoint_problems_are_carried_not_raised():
    assert "unsupported URL scheme 'ftp'" in resolve("ftp://127.0.0.1/v1").problem
    assert "no host" in resolve("http:///v1").problem
    assert "invalid base URL" in resolve("http://127.0.0.1:99999/v1").problem
