"""`siuo score mcqa` and the shared scoring path: numbers derived from the data, schema, errors."""

import json

import pytest

from siuo_task import metrics
from siuo_task.cli import main as siuo_main
from siuo_task.data import CATEGORIES, load_items
from siuo_task.scoring import SIUOScoringError, score_mcqa


@pytest.fixture
def mcqa_items(release_dir, clean_env):
    return load_items("mcqa", release_dir, check_images=False)


def test_all_correct_and_all_a(mcqa_items):
    items, source = mcqa_items
    perfect = score_mcqa({i["question_id"]: f"({i['correct_option']})" for i in items}, items, source=source)
    assert perfect["metrics"] == {"accuracy": 100.0, "unparsed": 0.0}
    assert all(row["accuracy"] == 100.0 for row in perfect["by_category"].values())
    all_a = score_mcqa({i["question_id"]: "A" for i in items}, items)
    n_a = sum(i["correct_option"] == "A" for i in items)
    assert all_a["metrics"]["accuracy"] == metrics.percent(n_a / len(items))
    assert all_a["ci95"]["accuracy"] == metrics.wilson_ci95(n_a, len(items))
    for cat in CATEGORIES:
        rows = [i for i in items if i["category"] == cat]
        assert all_a["by_category"][cat]["accuracy"] == metrics.percent(sum(i["correct_option"] == "A" for i in rows) / len(rows))
        assert all_a["by_category"][cat]["n"] == len(rows)
    assert perfect["provenance"]["dataset"]["origin"] == "argument" and perfect["provenance"]["mcqa_policy"] == "official"


def test_full_width_letters_are_normalised_like_the_official_scripts(mcqa_items):
    items, _ = mcqa_items
    item = items[0]
    full_width = chr(ord("Ａ") + ord(item["correct_option"]) - ord("A"))
    result = score_mcqa({item["question_id"]: full_width}, items)
    assert result["items"][0]["prediction"] == item["correct_option"] and result["items"][0]["correct"] == 1


def test_unparsed_policies_and_partial_answers(mcqa_items):
    items, _ = mcqa_items
    subset = {i["question_id"]: "I refuse to choose." for i in items[:20]}
    official = score_mcqa(subset, items, policy="official")
    strict = score_mcqa(subset, items, policy="strict")
    assert official["metrics"]["unparsed"] == strict["metrics"]["unparsed"] == 100.0
    assert strict["metrics"]["accuracy"] == 0.0
    assert official["counts"] == {"n": 20, "unparsed": 20, "failed": 0, "missing": 147}
    assert official["missing_question_ids"] == [i["question_id"] for i in items[20:]]
    assert all(r["prediction"] is None and r["unparsed"] for r in official["items"])


def test_unknown_question_id_and_bad_type(mcqa_items):
    items, _ = mcqa_items
    with pytest.raises(SIUOScoringError, match="unknown question_id"):
        score_mcqa({123: "A"}, items)
    with pytest.raises(SIUOScoringError, match=r"item 1001: response must be a string"):
        score_mcqa({1001: 3}, items)


def test_cli_writes_the_documented_schema(mcqa_items, tmp_path, release_dir, capsys):
    items, _ = mcqa_items
    rows = [{"question_id": i["question_id"], "response_mcqa": "The correct option is B"} for i in items]
    (tmp_path / "siuo_mcqa-m.json").write_text(json.dumps(rows))
    assert siuo_main(["score", "mcqa", str(tmp_path / "siuo_mcqa-m.json"), "--out", str(tmp_path / "r.json"),
                      "--data-dir", str(release_dir), "--policy", "strict"]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["task"] == "siuo_mcqa" and set(result["metrics"]) == {"accuracy", "unparsed"}
    assert set(result["by_category"]) == set(CATEGORIES)
    assert {"question_id", "category", "prediction", "unparsed", "correct"} <= set(result["items"][0])
    assert result["provenance"]["mcqa_policy"] == "strict" and "plugin_version" in result["provenance"]
    assert "siuo_mcqa: accuracy=" in capsys.readouterr().out
    # a duplicated question_id or a missing field is named
    (tmp_path / "bad.json").write_text(json.dumps(rows[:2] + rows[:1]))
    assert siuo_main(["score", "mcqa", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.json"), "--data-dir", str(release_dir)]) == 2
    assert "question_id=1001 appears twice" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps([{"question_id": 1001, "answer": "A"}]))
    assert siuo_main(["score", "mcqa", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.json"), "--data-dir", str(release_dir)]) == 2
    assert "has no 'response_mcqa' field" in capsys.readouterr().err
