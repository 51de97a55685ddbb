"""The one table of harness file layouts: what a writer names is what a reader finds."""

import json
from pathlib import Path

import pytest

from siuo_task.core import layouts, schema


def test_every_layout_links_what_its_writer_names(tmp_path):
    runs = {
        "lmms-eval": (
            tmp_path / "m" / "2026-12-04T10-00-00.123456_results.json",
            {"date": "2026-12-04T10-00-00.123456"},
            layouts.lmms_eval_stamp("2026-12-04T10:00:00.123456"),
        ),
        "lm-eval": (
            tmp_path / "m" / "results_2026-12-04T10-00-00.123456.json",
            {"date": 1764842400.25},
            layouts.lm_eval_stamp(1764842400.25),
        ),
        # inspect's log, as the inspect adapter's reader returns it (no "date")
        "inspect-ai": (
            tmp_path / "logs" / "2026-12-04T10-00-00-00-00_siuo-gen_ABC123.eval",
            {"results": {}, "config": {}},
            "2026-12-04T10-00-00-00-00_siuo-gen_ABC123",
        ),
    }
    assert set(runs) == set(layouts.LAYOUTS)  # a new row needs a case here
    for harness, (results_path, results, stamp) in runs.items():
        layout = layouts.LAYOUTS[harness]
        results = json.loads(json.dumps(results))  # as read back from the file
        assert layouts.layout_of(results_path, results) is layout
        for task in schema.TASKS:
            written = results_path.with_name(layout.siuo_name(stamp, task))
            assert layouts.linked_result_path(results_path, results, task) == written
        assert results_path.match(layout.results_glob)


def test_names_are_the_documented_ones(tmp_path):
    lmms = tmp_path / "20261202_010203_results.json"
    assert layouts.linked_result_path(lmms, {"date": "20261202_010203"}, "siuo_gen").name == "20261202_010203_siuo_siuo_gen.json"
    assert layouts.samples_file(lmms, {}, "siuo_mcqa").name == "20261202_010203_samples_siuo_mcqa.jsonl"
    lm = tmp_path / "results_2026-12-02T01-02-03.000001.json"
    assert layouts.linked_result_path(lm, {"date": 1764637323.5}, "siuo_mcqa").name == "siuo_siuo_mcqa_1764637323.5.json"
    assert layouts.samples_file(lm, {"date": 1764637323.5}, "siuo_gen").name == "samples_siuo_gen_2026-12-02T01-02-03.000001.jsonl"
    assert layouts.layout_of(tmp_path / "x.json", {}) is None
    assert layouts.linked_result_path(tmp_path / "x.json", {}, "siuo_gen") is None
    assert layouts.layout_of(lmms, {"date": True}) is layouts.LMMS_EVAL  # a bool is not lm-eval's start time
    log = tmp_path / "2026-12-02T01-02-03-00-00_siuo-mcqa_Xy9.eval"
    assert layouts.linked_result_path(log, {}, "siuo_mcqa").name == "siuo_mcqa_2026-12-02T01-02-03-00-00_siuo-mcqa_Xy9.json"
    assert layouts.samples_file(log, {}, "siuo_mcqa") is None  # the samples are inside the log
    assert layouts.reader_of(log) == "siuo_task.results.io.inspect_logs:read_results"
    assert layouts.reader_of(log.with_suffix(".json")) == layouts.reader_of(log)  # inspect --log-format json
    assert layouts.shares_folder(log, {}) and not layouts.shares_folder(lmms, {"date": "20261202_010203"})


@pytest.mark.parametrize(
    "name",
    [
        "2026-12-04T10-00-00.123456_results.json",  # lmms-eval's files start with an ISO time too
        "2026-12-04T10-00-00.123456_siuo_siuo_gen.json",
        "2026-12-04T10-00-00_results.json",
        "siuo_gen_2026-12-04T10-00-00-00-00_siuo-gen_ABC.json",  # the SIUO file beside an inspect log
        "2026-12-04T10-00-00-00-00_siuo-gen_ABC.eval.lock",
    ],
)
def test_other_files_are_not_inspect_logs(name):
    assert layouts.reader_of(Path(name)) is None
    assert layouts.layout_of(Path(name), {}) in (None, layouts.LMMS_EVAL)


def test_harness_result_files_lists_every_layout_only(tmp_path):
    for name in (
        "a_results.json",
        "results_b.json",
        "a_siuo_siuo_gen.json",
        "notes.json",
        "2026-12-04T10-00-00-00-00_t_ID.eval",
        "2026-12-04T10-00-00-00-00_t_ID2.json",
        "siuo_gen_2026-12-04T10-00-00-00-00_t_ID.json",
        "2026-12-04T10-00-00.5_siuo_siuo_gen.json",
    ):
        (tmp_path / name).write_text("{}")
    (tmp_path / "dir_results.json").mkdir()
    assert [p.name for p in layouts.harness_result_files(tmp_path)] == [
        "2026-12-04T10-00-00-00-00_t_ID.eval",
        "2026-12-04T10-00-00-00-00_t_ID2.json",
        "a_results.json",
        "results_b.json",
    ]


@pytest.mark.parametrize(
    "env, output, expected", [("", None, "cwd/siuo_results"), ("", "runs/a.json", "runs"), ("", "runs", "runs"), ("mine", "runs", "mine")]
)
def test_results_folder(monkeypatch, tmp_path, env, output, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(layouts.ENV_RESULTS_DIR, env)
    want = tmp_path / "siuo_results" if expected.startswith("cwd/") else Path(expected)
    assert layouts.results_folder(output) == want
