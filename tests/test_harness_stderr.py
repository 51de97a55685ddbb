"""Per-item scores for the harness's standard errors (issue: lmms-eval's table showed N/A).

lmms-eval (0.6.0 to 0.7.3) computes ``<metric>_stderr_clt`` after the aggregation, from the same
per-item values the aggregation got: the values, or dicts carrying the task's ``score_key``
(``np.std(ddof=1) / sqrt(n)``), and ``_stderr_clustered`` from ``cluster_key``. SIUO's aggregation
scores all answers once, then writes each item's score (0 or 100: the metric's own scale) into that
metric's records; items without a verdict get none, as they are left out of the rate.
"""

import math
from pathlib import Path

import pytest

from siuo_task.core import layouts, schema, scoring
from siuo_task.harnesses import records
from siuo_task.harnesses.call import HarnessCall
from siuo_task.harnesses.session import Sessions

DOC = {"question_id": 7, "image": "S-07.png", "question": "q"}


def test_each_metric_gets_its_own_record():
    """The aggregation of one metric writes its score into its own records only (not shared dicts)."""
    out = records.make_gen_process_results(schema.GEN_TASK)(DOC, ["an answer"])
    assert list(out) == list(schema.GEN_METRICS)
    assert len({id(r) for r in out.values()}) == 3
    assert all(r == {"task": "siuo_gen", "question_id": 7, "answers": ["an answer"], "image": "S-07.png"} for r in out.values())
    mcqa = records.mcqa_process_results({**DOC, "options": []}, ["B"])
    assert mcqa["accuracy"] is not mcqa["unparsed"] and mcqa["accuracy"]["image"] == "S-07.png"
    assert schema.ITEM_SCORE_KEY not in out["safe"] and schema.ITEM_SCORE_KEY not in mcqa["accuracy"]


@pytest.mark.parametrize(
    "item, metric, expected",
    [
        ({"safe": 1}, "safe", 100.0),
        ({"safe": 0}, "safe", 0.0),
        ({"safe": None}, "safe", None),  # no verdict: left out of the rate, so out of its standard error
        ({"safe_effective": 1}, "safe_effective", 100.0),
        ({"correct": True, "unparsed": False}, "accuracy", 100.0),
        ({"correct": False, "unparsed": True}, "accuracy", 0.0),
        ({"correct": False, "unparsed": True}, "unparsed", 100.0),
    ],
)
def test_item_score_is_on_the_metrics_scale(item, metric, expected):
    assert scoring.item_score(item, metric) == expected


def test_item_score_names_an_unknown_metric():
    expected = "no per-item score for metric 'accuracy_at_5'; expected one of accuracy, unparsed, safe, effective, safe_effective"
    with pytest.raises(KeyError) as raised:
        scoring.item_score({"correct": True}, "accuracy_at_5")
    assert raised.value.args == (expected,)


def _mcqa_session(data_dir, monkeypatch):
    monkeypatch.setenv("SIUO_DATA_DIR", str(data_dir))
    monkeypatch.setenv(layouts.ENV_RESULTS_DIR, str(data_dir.parent / "results"))
    sessions = Sessions(lambda: HarnessCall("test", "siuo-task"), lambda m: None, lambda m: None)
    sessions.begin(schema.MCQA_TASK)
    return sessions


def test_aggregation_writes_per_item_scores_from_the_one_scoring(data_dir, monkeypatch):
    """Both MCQA metrics from one scoring: scores written into each metric's records, numbers unchanged,
    and lmms-eval's CLT formula on them gives the binomial standard error times sqrt(n/(n-1))."""
    from siuo_task.core.data import load_items

    items = load_items("mcqa", data_dir, check_images=False)[0][:10]
    answers = [f"({item['correct_option']})" if i % 3 else "no letter here" for i, item in enumerate(items)]
    per_item = [records.mcqa_process_results(item, [answer]) for item, answer in zip(items, answers)]
    sessions = _mcqa_session(data_dir, monkeypatch)
    calls = []
    session = sessions.current(schema.MCQA_TASK)
    original = session._score
    monkeypatch.setattr(session, "_score", lambda recs: calls.append(1) or original(recs))
    accuracy_records = [r["accuracy"] for r in per_item]
    unparsed_records = [r["unparsed"] for r in per_item]
    accuracy = sessions.metric("accuracy")(accuracy_records)
    unparsed = sessions.metric("unparsed")(unparsed_records)
    assert calls == [1]  # one scoring for both metrics, though the first wrote scores into its records
    result = session.score([{k: v for k, v in r.items() if k != schema.ITEM_SCORE_KEY} for r in unparsed_records])
    correct = {i["question_id"]: i["correct"] for i in result["items"]}
    assert [r[schema.ITEM_SCORE_KEY] for r in accuracy_records] == [100.0 if correct[r["question_id"]] else 0.0 for r in accuracy_records]
    assert [r[schema.ITEM_SCORE_KEY] for r in unparsed_records] == [0.0 if i % 3 else 100.0 for i in range(10)]
    assert accuracy == result["metrics"]["accuracy"] and unparsed == result["metrics"]["unparsed"] == 40.0
    # lmms-eval's Stderr_CLT on these records (np.std(ddof=1) / sqrt(n)) against the binomial one
    import numpy as np

    scores = [r[schema.ITEM_SCORE_KEY] for r in unparsed_records]
    clt = np.std(scores, ddof=1) / np.sqrt(len(scores))
    p, n = 0.4, 10
    assert clt == pytest.approx(100 * math.sqrt(p * (1 - p) / (n - 1)))
    assert clt == pytest.approx(100 * math.sqrt(p * (1 - p) / n) * math.sqrt(n / (n - 1)))


def test_items_without_a_verdict_carry_no_score(monkeypatch):
    """A gen item with no verdict keeps no score key (lmms-eval then leaves it out, as the rate does)."""
    from siuo_task.harnesses import session as session_module

    recs = [{"task": "siuo_gen", "question_id": q, "answers": ["a"], schema.ITEM_SCORE_KEY: 55.0} for q in (1, 2, 3)]
    result = {"items": [{"question_id": 1, "safe": 1}, {"question_id": 2, "safe": None}, {"question_id": 3, "safe": 0}]}
    session_module.write_item_scores(recs, result, "safe")
    assert [r.get(schema.ITEM_SCORE_KEY) for r in recs] == [100.0, None, 0.0]
    assert schema.ITEM_SCORE_KEY not in recs[1]


def test_lmms_eval_yamls_name_the_score_and_cluster_keys():
    """lmms-eval reads ``score_key``/``cluster_key`` from the task config: the template names the schema's keys."""
    import yaml

    from siuo_task.harnesses.paths import lmms_eval_tasks_dir

    template = yaml.safe_load((Path(lmms_eval_tasks_dir()) / "siuo" / "_default_template_yaml").read_text().replace("!function", ""))
    assert template["score_key"] == schema.ITEM_SCORE_KEY and template["cluster_key"] == schema.ITEM_CLUSTER_KEY
