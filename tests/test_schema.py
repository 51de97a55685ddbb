"""The result schema module: names, the atomic writer, validity, and one scoring session per evaluation."""

import json

import pytest

from siuo_task.core import schema, scoring
from siuo_task.harnesses import call as harness_call_mod
from siuo_task.harnesses import records
from siuo_task.harnesses import session as harness_session


def test_atomic_writer_leaves_no_temporary_file(tmp_path):
    path = schema.write_json_atomic(tmp_path / "a" / "r.json", {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_an_invalid_result_is_written_then_raises(tmp_path):
    result = {"task": "siuo_gen", schema.VALID: False, schema.INVALID_REASONS: ["judge budget exhausted"], "metrics": {}}
    with pytest.raises(scoring.SIUOInvalidResult, match="judge budget exhausted") as info:
        schema.write_result(result, tmp_path / "r.json")
    assert isinstance(info.value, RuntimeError)
    assert json.loads((tmp_path / "r.json").read_text())["valid"] is False  # kept for inspection
    assert schema.write_result({**result, schema.VALID: True}, tmp_path / "ok.json").is_file()


def test_secret_hints_redact_model_args():
    assert schema.redact_model_args("pretrained=x,api_key=sk-1,hf_token=t") == "pretrained=x,api_key=<redacted>,hf_token=<redacted>"
    assert schema.redact_model_args({"Password": "p", "model": "m"}) == {"Password": "<redacted>", "model": "m"}


def test_answers_from_results_never_turn_a_missing_answer_into_text():
    assert records.answers_from_results([None]) == [None]
    assert records.answers_from_results([]) == [None]
    assert records.answers_from_results([["a", 3, None]]) == ["a", None, None]
    assert records.answers_from_results(["B\n"]) == ["B\n"]  # normalised once, in scoring
    assert scoring.normalize_answer(" Ｂ\n") == "B" and scoring.normalize_answer(None) is None


def _session_with(monkeypatch, tmp_path, extra: dict):
    monkeypatch.setenv("SIUO_RESULTS_DIR", str(tmp_path))
    monkeypatch.delenv("SIUO_MCQA_POLICY", raising=False)
    monkeypatch.setattr(harness_session.data, "load_items", lambda setting, check_images=False: ([], None))
    calls = []

    def score_mcqa(responses, items, **kwargs):
        calls.append(kwargs["policy"])
        return {
            "task": "siuo_mcqa",
            "metrics": {"accuracy": 50.0, "unparsed": 0.0},
            "counts": {"n": 1, "unparsed": 0, "failed": 0},
            "by_category": {},
            "items": [{"question_id": q, "correct": False, "unparsed": False} for q in responses],
            "provenance": {"harness": kwargs["harness"]},
            **extra,
        }

    monkeypatch.setattr(harness_session.scoring, "score_mcqa", score_mcqa)
    sessions = harness_session.Sessions(lambda: harness_call_mod.HarnessCall("test", "pytest"), lambda m: None, lambda m: None)
    return sessions, calls


def test_a_session_scores_once_per_task_and_the_next_evaluation_afresh(monkeypatch, tmp_path):
    sessions, calls = _session_with(monkeypatch, tmp_path, {"valid": True})
    records = [{"task": "siuo_mcqa", "question_id": 1001, "response": "A"}]
    accuracy, unparsed = sessions.metric("accuracy"), sessions.metric("unparsed")
    with pytest.raises(scoring.SIUOScoringError, match="no scoring session"):
        accuracy(records)
    first = sessions.begin("siuo_mcqa")
    assert accuracy(records) == 50.0 and unparsed(records) == 0.0 and calls == ["official"]  # one result for both
    monkeypatch.setenv("SIUO_MCQA_POLICY", "strict")
    second = sessions.begin("siuo_mcqa")  # the next evaluation: same answers, its own settings
    assert accuracy(records) == 50.0 and calls == ["official", "strict"]
    assert first.identity != second.identity and first.path != second.path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.path.name, second.path.name])
    assert json.loads(second.path.read_text())["provenance"]["harness"]["session"] == second.identity
    with pytest.raises(scoring.SIUOScoringError, match="another task"):
        accuracy(records + [{"task": "siuo_gen", "question_id": 1001, "answers": ["x"]}])


def test_a_session_raises_after_writing_an_invalid_result(monkeypatch, tmp_path):
    sessions, _ = _session_with(monkeypatch, tmp_path, {"valid": False, "invalid_reasons": ["too many failures"]})
    session = sessions.begin("siuo_mcqa")
    with pytest.raises(scoring.SIUOInvalidResult, match="too many failures"):
        sessions.metric("accuracy")([{"task": "siuo_mcqa", "question_id": 1001, "response": "A"}])
    assert json.loads(session.path.read_text())["valid"] is False


def test_a_later_evaluation_never_overwrites_an_earlier_ones_linked_file(monkeypatch, tmp_path):
    sessions, _ = _session_with(monkeypatch, tmp_path / "unused", {"valid": True})
    monkeypatch.delenv("SIUO_RESULTS_DIR")
    linked = tmp_path / "model" / "20261202_010203_siuo_siuo_mcqa.json"
    call = harness_call_mod.HarnessCall("test", "pytest", result_path=lambda task: linked)
    records = [{"task": "siuo_mcqa", "question_id": 1001, "response": "A"}]
    first = sessions.begin("siuo_mcqa", call)
    sessions.metric("accuracy")(records)
    second = sessions.begin("siuo_mcqa", call)  # the same run stamp (lmms-eval's default datetime_str)
    sessions.metric("accuracy")(records)
    assert first.path == linked and second.path == linked.with_name(f"{linked.stem}_{second.identity[:8]}.json")
    assert json.loads(linked.read_text())["provenance"]["harness"]["session"] == first.identity
