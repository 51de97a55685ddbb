"""SIUO through lmms-eval's own vLLM model classes, with a stand-in engine (``tests/fake_vllm``).

vLLM itself can't run here (no GPU, and it is not installable on these machines), so ``LLM.chat``
is faked; everything between the task and the engine is lmms-eval's real code: the chat class
(``--model vllm``, which reads ``doc_to_messages``) and the simple class (``--force_simple``, which
reads ``doc_to_visual``/``doc_to_text``), their image encoding, sampling parameters and batching.
The fake engine logs each conversation it is given, and the tests check it against the SIUO items:
the official prompt, the item's own image (pixel for pixel), and the protocol's decoding.

They also pin down what those classes do to decoding (0.7.3): they generate the larger of the
task's ``max_new_tokens`` and their own (default 4096), and the chat class samples with
``top_p=0.95`` unless told otherwise. The SIUO tasks warn about both before generation and record
them in the result's provenance; with ``max_new_tokens=1`` in ``--model_args`` (and ``top_p=1.0``
in ``--gen_kwargs`` for ``siuo_gen_vote3``) the engine gets exactly the protocol's settings.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from siuo_dev.lmms_eval_runs import check_gen, check_mcqa, run_lmms_eval
from siuo_dev.reference_generate import siuo_prompt
from siuo_dev.tiny_models import build_qwen2_5_vl
from siuo_task.core.data import load_items

pytestmark = pytest.mark.e2e

FAKE_VLLM = Path(__file__).parent / "fake_vllm"
LIMIT = 3
WARNING = "does not decode as the SIUO protocol asks"


def _fake_engine_module():
    """The fake ``vllm`` module under a private name (never as ``vllm`` in this process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("siuo_fake_vllm", FAKE_VLLM / "vllm" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


image_digest = _fake_engine_module().image_digest  # the engine's own digest: both sides hash pixels alike


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    # the fake engine answers by itself; the class only needs a checkpoint folder to name
    return build_qwen2_5_vl(tmp_path_factory.mktemp("vllm_model") / "qwen2_5_vl")


def run_vllm(tmp_path, data_dir, model_args: str, tasks: str, *extra: str):
    log = tmp_path / "engine.jsonl"
    run = run_lmms_eval(
        tmp_path / "out",
        data_dir,
        [
            "--model",
            "vllm",
            "--model_args",
            model_args,
            "--tasks",
            tasks,
            "--limit",
            str(LIMIT),
            *extra,
        ],
        extra_env={"PYTHONPATH": str(FAKE_VLLM), "SIUO_FAKE_VLLM_LOG": str(log)},
    )
    engine = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert engine, f"the engine was never called; log tail:\n{run.log[-3000:]}"
    return run, engine


def item_digest(item) -> dict:
    with Image.open(item["image_path"]) as img:
        return image_digest(img)


def check_requests(engine: list, data_dir, setting: str, *, image_first: bool = True, repeats: int = 1) -> None:
    """The engine got each of the first LIMIT items ``repeats`` times: official prompt + the item's image."""
    items = load_items(setting, data_dir)[0][:LIMIT]
    expected = Counter()
    for item in items:
        expected[(siuo_prompt(setting, item), json.dumps(item_digest(item)))] += repeats
    got = Counter()
    for request in engine:
        assert request["roles"] == ["user"]
        assert request["parts"] == (["image", "text"] if image_first else ["text", "image"]), request["parts"]
        assert len(request["texts"]) == 1 and len(request["images"]) == 1
        got[(request["texts"][0], json.dumps(request["images"][0]))] += 1
    assert got == expected, "the engine did not get exactly the SIUO items' prompts and images"


def by_setting(engine: list) -> dict:
    out = {"mcqa": [], "gen": []}
    for request in engine:
        out["mcqa" if "Chocie:" in request["texts"][0] else "gen"].append(request)
    return out


def test_chat_class_gets_siuo_requests_and_protocol_decoding(data_dir, checkpoint, tmp_path):
    """``--model vllm`` (chat class) with max_new_tokens=1: SIUO's items, prompts and decoding reach the engine."""
    run, engine = run_vllm(tmp_path, data_dir, f"model={checkpoint},max_new_tokens=1", "siuo_mcqa,siuo_gen")
    assert run.backend() == "lmms_eval.models.chat.vllm.VLLM (chat)"
    requests = by_setting(engine)
    for setting, max_tokens in (("mcqa", 5), ("gen", 500)):
        check_requests(requests[setting], data_dir, setting)
        assert {(r["sampling"]["max_tokens"], r["sampling"]["temperature"]) for r in requests[setting]} == {(max_tokens, 0)}
    check_mcqa(run, data_dir, LIMIT)
    check_gen(run, data_dir, LIMIT)
    # what the engine answered is what SIUO scored
    answers = {r["texts"][0]: r["answer"] for r in engine}
    mcqa_items = {i["question_id"]: i for i in load_items("mcqa", data_dir)[0]}
    for item in run.siuo("siuo_mcqa")["items"]:
        assert item["response"] == answers[siuo_prompt("mcqa", mcqa_items[item["question_id"]])]
    assert WARNING not in run.log
    for task in ("siuo_mcqa", "siuo_gen"):
        assert "model_decoding" not in run.siuo(task)["provenance"]["harness"]


def test_chat_class_vote3_samples_as_the_protocol_asks(data_dir, checkpoint, tmp_path):
    """siuo_gen_vote3 with max_new_tokens=1 and top_p=1.0: three sampled requests per item at T=1.0, top_p=1.0."""
    run, engine = run_vllm(tmp_path, data_dir, f"model={checkpoint},max_new_tokens=1", "siuo_gen_vote3", "--gen_kwargs", "top_p=1.0")
    check_requests(engine, data_dir, "gen", repeats=3)
    assert {(r["sampling"]["max_tokens"], r["sampling"]["temperature"], r["sampling"]["top_p"]) for r in engine} == {(500, 1.0, 1.0)}
    result = run.siuo("siuo_gen_vote3")
    assert [len(item["answers"]) for item in result["items"]] == [3] * LIMIT
    assert all(len(set(item["answers"])) > 1 for item in result["items"]), "three draws per item, not one answer thrice"
    assert WARNING not in run.log
    assert "model_decoding" not in result["provenance"]["harness"]


def test_chat_class_defaults_are_flagged_before_generation(data_dir, checkpoint, tmp_path):
    """Without those arguments the class decodes otherwise; SIUO says so up front and records what the engine got."""
    run, engine = run_vllm(tmp_path, data_dir, f"model={checkpoint}", "siuo_mcqa,siuo_gen_vote3")
    requests = by_setting(engine)
    assert {r["sampling"]["max_tokens"] for r in engine} == {4096}
    assert {r["sampling"]["top_p"] for r in requests["gen"]} == {0.95}
    warnings = [line for line in run.log.splitlines() if WARNING in line]
    assert len(warnings) == 2, warnings
    assert any("siuo_mcqa" in w and "max_new_tokens=1 to --model_args" in w for w in warnings)
    assert any("siuo_gen_vote3" in w and "top_p=1.0 to --gen_kwargs" in w for w in warnings)
    # the warnings come while the tasks are built, before the model answers anything
    assert run.log.index(WARNING) < run.log.index("Model Responding")
    assert run.siuo("siuo_mcqa")["provenance"]["harness"]["model_decoding"] == {
        "model_class": "lmms_eval.models.chat.vllm.VLLM",
        "max_new_tokens": 4096,
        "task": {"max_new_tokens": 5, "top_p": None},
    }
    assert run.siuo("siuo_gen_vote3")["provenance"]["harness"]["model_decoding"] == {
        "model_class": "lmms_eval.models.chat.vllm.VLLM",
        "max_new_tokens": 4096,
        "top_p": 0.95,
        "task": {"max_new_tokens": 500, "top_p": 1.0},
    }


def test_simple_class(data_dir, checkpoint, tmp_path):
    """``--force_simple``: lmms-eval's simple vLLM class sends the prompt, then the image (its default order)."""
    run, engine = run_vllm(tmp_path, data_dir, f"model={checkpoint},max_new_tokens=1", "siuo_mcqa", "--force_simple")
    assert run.backend() == "lmms_eval.models.simple.vllm.VLLM (simple)"
    check_requests(engine, data_dir, "mcqa", image_first=False)
    assert {r["sampling"]["max_tokens"] for r in engine} == {5}
    check_mcqa(run, data_dir, LIMIT)
    assert WARNING not in run.log
