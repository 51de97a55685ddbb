"""The SIUO protocol version: recorded in every result, checked by `siuo verify`, shown by
`siuo report` beside the judge, printed by `siuo --version` (the fingerprint that forces a new
version when behaviour changes is in tests/test_golden.py)."""

import json

import pytest

from siuo_task import __version__
from siuo_task.cli import main as siuo_main
from siuo_task.core.data import load_items
from siuo_task.core.schema import PROTOCOL_VERSION
from siuo_task.results.verify import verify_result

from .verify_helpers import edited, load, mcqa_response, score_mcqa_file


@pytest.fixture(scope="module")
def mcqa_file(data_dir, tmp_path_factory):
    items = load_items("mcqa", data_dir, check_images=False)[0]
    return score_mcqa_file(
        data_dir, tmp_path_factory.mktemp("protocol"), {it["question_id"]: mcqa_response(i, it) for i, it in enumerate(items)}
    )


def test_every_result_records_the_protocol_version(mcqa_file):
    assert PROTOCOL_VERSION == "1"
    assert load(mcqa_file)["provenance"]["protocol_version"] == PROTOCOL_VERSION


def test_verify_checks_the_version(mcqa_file):
    result = load(mcqa_file)
    report = verify_result(result)
    assert report.ok and f"provenance.protocol_version: {PROTOCOL_VERSION}" in report.agrees
    other = verify_result(edited(result, lambda r: r["provenance"].update(protocol_version="0.9")))
    assert not other.ok and [m.path for m in other.mismatches] == ["provenance.protocol_version"]
    # a result of siuo-task 0.1 (before versions) still verifies, with a note that says so
    old = verify_result(edited(result, lambda r: r["provenance"].pop("protocol_version")))
    assert old.ok and any("no protocol version recorded" in note for note in old.notes)


def test_report_shows_the_version_beside_the_judge_and_flags_a_difference(mcqa_file, tmp_path, capsys):
    out = tmp_path / "report.md"
    assert siuo_main(["report", f"A={mcqa_file}", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert f"– (protocol {PROTOCOL_VERSION})" in text  # MCQA only: no judge, the protocol still shown
    old = tmp_path / "old.json"
    old.write_text(json.dumps(edited(load(mcqa_file), lambda r: r["provenance"].pop("protocol_version"))), encoding="utf-8")
    assert siuo_main(["report", f"A={mcqa_file}", f"B={old}", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "SIUO protocol version" in text and "(before 0.2: none recorded)" in text


def test_version_flag_prints_package_and_protocol(capsys):
    with pytest.raises(SystemExit) as exit_:
        siuo_main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"siuo-task {__version__} (SIUO protocol {PROTOCOL_VERSION})"
