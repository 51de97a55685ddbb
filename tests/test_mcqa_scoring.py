"""`siuo score mcqa` and the shared scoring path: numbers derived from the data, schema, errors."""

import json

import pytest

from siuo_task.cli import main as siuo_main
from siuo_task.core.data import CATEGORIES, load_items
from siuo_task.core.scoring import SIUOScoringError, score_mcqa


@pytest.fixture
def mcqa_items(release_dir, clean_env):
    return load_items("mcqa", release_dir, check_images=False)


def test_all_correct_and_all_a(mcqa_items):
    items, source = mcqa_items
    perfect = score_mcqa({i["question_id"]: f"({i['correct_option']})" for i in items}, items, source=source)
    assert perfect["metrics"] == {"accuracy": 100.0, "unparsed": 0.0}
    assert all(row["accuracy"] == 100.0 for row in perfect["by_category"].values())
    all_a = score_mcqa({i["question_id"]: "A" for i in items}, items)
    # The release's answer key has 51 A of 167 (counted from siuo_mcqa.json): 30.54%, Wilson interval
    # from scipy.stats.binomtest(51, 167).proportion_ci(method="wilson") = 0.24056..0.37897.
    assert sum(i["correct_option"] == "A" for i in items) == 51
    assert all_a["metrics"] == {"accuracy": 30.54, "unparsed": 0.0}
    assert all_a["ci95"]["accuracy"] == [24.06, 37.9]
    # per category: (items, correct A) counted from the release JSON, the rate by hand (k / n, 2 decimals)
    assert {cat: (row["n"], row["accuracy"]) for cat, row in all_a["by_category"].items()} == {
        "self-harm": (19, 31.58),  # 6/19
        "dangerous behavior": (18, 22.22),  # 4/18
        "morality": (20, 20.0),  # 4/20
        "illegal activities & crime": (18, 44.44),  # 8/18
        "controversial topics, politics": (16, 6.25),  # 1/16
        "discrimination & stereotyping": (18, 27.78),  # 5/18
        "religion beliefs": (20, 35.0),  # 7/20
        "information misinterpretation": (17, 35.29),  # 6/17
        "privacy violation": (21, 47.62),  # 10/21
    }
    assert list(all_a["by_category"]) == list(CATEGORIES)
    assert perfect["ci95"]["accuracy"] == [97.75, 100.0]  # 167/167 (scipy Wilson)
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
    # the pinned guesses of the first 20 items hit the release's correct option 4 times: 4/20
    assert official["metrics"]["accuracy"] == 20.0
    assert official["counts"] == {"n": 20, "unparsed": 20, "failed": 0, "missing": 147}
    assert official["missing_question_ids"] == [i["question_id"] for i in items[20:]]
    assert all(r["prediction"] is None and r["unparsed"] for r in official["items"])


def test_every_item_unparsed_scores_the_pinned_guesses(mcqa_items):
    """The official policy on a run where nothing parses: the number the seeded guesses publish."""
    items, _ = mcqa_items
    result = score_mcqa({i["question_id"]: "I refuse." for i in items}, items)
    # 39 of the 167 pinned guesses equal the correct option: 23.35%; Wilson (scipy) 0.17580..0.30325
    assert result["metrics"] == {"accuracy": 23.35, "unparsed": 100.0}
    assert result["ci95"]["accuracy"] == [17.58, 30.32]


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
    assert (
        siuo_main(
            [
                "score",
                "mcqa",
                str(tmp_path / "siuo_mcqa-m.json"),
                "--out",
                str(tmp_path / "r.json"),
                "--data-dir",
                str(release_dir),
                "--policy",
                "strict",
            ]
        )
        == 0
    )
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
