"""The lmms-eval hooks in isolation: request building, per-model prompt overrides, answers, records."""

import pytest

pytest.importorskip("lmms_eval")

from siuo_task.core.data import load_items  # noqa: E402
from siuo_task.core.prompts import mcqa_prompt  # noqa: E402
from siuo_task.harnesses.lmms_eval import decoding  # noqa: E402
from siuo_task.harnesses.lmms_eval import hooks as adapter  # noqa: E402


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
    assert (
        adapter.mcqa_doc_to_text(mcqa[0], kwargs)
        == "<start>" + mcqa_prompt(mcqa[0]["question"], mcqa[0]["options"]) + " Answer with the letter."
    )
    assert adapter.gen_doc_to_messages(gen[0], kwargs)[0]["content"][1]["text"] == f"<start>{gen[0]['question']} Answer with the letter."


def test_process_results_records_only_ids_and_answers(docs):
    mcqa, gen = docs
    assert adapter.mcqa_process_results(mcqa[0], ["B"]) == {
        "accuracy": {"task": "siuo_mcqa", "question_id": 1001, "response": "B", "image": "S-01.png"},
        "unparsed": {"task": "siuo_mcqa", "question_id": 1001, "response": "B", "image": "S-01.png"},
    }
    record = adapter.gen_vote3_process_results(gen[0], ["one", "two", "three"])["safe"]
    assert record == {"task": "siuo_gen_vote3", "question_id": 1001, "answers": ["one", "two", "three"], "image": "S-01.png"}
    assert adapter.gen_process_results(gen[0], [["nested", "list"]])["effective"]["answers"] == ["nested", "list"]
    assert adapter.gen_process_results(gen[0], [None])["safe_effective"]["answers"] == [None]  # a generation failure
    assert adapter.mcqa_process_results(mcqa[0], [])["accuracy"]["response"] is None


GREEDY_MCQA = {"max_new_tokens": 5, "temperature": 0, "do_sample": False, "until": []}
SAMPLED_GEN = {"max_new_tokens": 500, "temperature": 1.0, "do_sample": True, "until": []}


@pytest.mark.parametrize(
    "argv, task_kwargs, expected",
    [
        # classes that decode as asked: nothing to say
        (["--model", "qwen2_5_vl", "--model_args", "pretrained=x"], GREEDY_MCQA, None),
        (["--model", "openai", "--model_args", "model_version=gpt-4o"], SAMPLED_GEN, None),
        # lmms-eval's vLLM chat class: max(task, own) tokens, top_p 0.95 when sampling
        (
            ["--model", "vllm", "--model_args", "model=x"],
            GREEDY_MCQA,
            {"max_new_tokens": 4096, "task": {"max_new_tokens": 5, "top_p": None}},
        ),
        (["--model=vllm", "--model_args=model=x,max_new_tokens=1"], GREEDY_MCQA, None),
        (
            ["--model", "vllm", "--model_args", "model=x,max_new_tokens=1"],
            SAMPLED_GEN,
            {"top_p": 0.95, "task": {"max_new_tokens": 500, "top_p": 1.0}},
        ),
        (["--model", "vllm", "--model_args", "model=x,max_new_tokens=1", "--gen_kwargs", "top_p=1.0"], SAMPLED_GEN, None),
        # --gen_kwargs max_new_tokens is what the task asks for; the class still raises it to its own
        (
            ["--model", "vllm", "--model_args", "model=x,max_new_tokens=600", "--gen_kwargs", "max_new_tokens=8"],
            GREEDY_MCQA,
            {"max_new_tokens": 600, "task": {"max_new_tokens": 8, "top_p": None}},
        ),
        # the simple class: its own default (1024); it sets top_p inline, which this check can't see
        (
            ["--model", "vllm", "--force_simple", "--model_args", "model=x"],
            SAMPLED_GEN,
            {"max_new_tokens": 1024, "task": {"max_new_tokens": 500, "top_p": 1.0}},
        ),
        # nothing to go on, or a model lmms-eval doesn't know: never an error
        ([], GREEDY_MCQA, None),
        (["--model", "no_such_model_class"], GREEDY_MCQA, None),
    ],
)
def test_model_decoding_follows_the_model_class_rules(argv, task_kwargs, expected):
    found = decoding.model_decoding(argv, task_kwargs)
    if expected is None:
        assert found is None
    else:
        assert found.pop("model_class").startswith("lmms_eval.models.")
        assert found == expected
