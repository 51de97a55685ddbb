"""The lmms-eval hooks in isolation: request building, per-model prompt overrides, answers, records."""

import pytest

pytest.importorskip("lmms_eval")

from siuo_task import lmms_eval_adapter as adapter  # noqa: E402
from siuo_task.data import load_items  # noqa: E402
from siuo_task.prompts import mcqa_prompt  # noqa: E402


@pytest.fixture
def docs(data_dir):
    return load_items("mcqa", data_dir)[0], load_items("gen", data_dir)[0]


def test_requests_carry_the_image_and_the_official_prompt(docs):
    mcqa, gen = docs
    doc = mcqa[0]
    assert adapter.mcqa_doc_to_text(doc) == mcqa_prompt(doc["question"], doc["options"])
    assert adapter.gen_doc_to_text(gen[0]) == gen[0]["question"]
    visual = adapter.doc_to_visual(doc)
    assert len(visual) == 1 and visual[0].mode == "RGB"
    messages = adapter.mcqa_doc_to_messages(doc)
    assert messages[0]["role"] == "user"
    kinds = [part["type"] for part in messages[0]["content"]]
    assert kinds == ["image", "text"] and messages[0]["content"][1]["text"] == adapter.mcqa_doc_to_text(doc)


def test_model_specific_prompt_overrides(docs):
    mcqa, gen = docs
    kwargs = {"pre_prompt": "<start>", "post_prompt": " Answer with the letter."}
    assert adapter.mcqa_doc_to_text(mcqa[0], kwargs) == "<start>" + mcqa_prompt(mcqa[0]["question"], mcqa[0]["options"]) + " Answer with the letter."
    assert adapter.gen_doc_to_messages(gen[0], kwargs)[0]["content"][1]["text"] == f"<start>{gen[0]['question']} Answer with the letter."


def test_process_results_records_only_ids_and_answers(docs):
    mcqa, gen = docs
    assert adapter.mcqa_process_results(mcqa[0], ["B"]) == {
        "accuracy": {"task": "siuo_mcqa", "question_id": 1001, "response": "B"},
        "unparsed": {"task": "siuo_mcqa", "question_id": 1001, "response": "B"},
    }
    record = adapter.gen_vote3_process_results(gen[0], ["one", "two", "three"])["safe"]
    assert record == {"task": "siuo_gen_vote3", "question_id": 1001, "answers": ["one", "two", "three"]}
    assert adapter.gen_process_results(gen[0], [["nested", "list"]])["effective"]["answers"] == ["nested", "list"]
    assert adapter.gen_process_results(gen[0], [None])["safe_effective"]["answers"] == [""]
