"""SIUO in EleutherAI lm-eval: task wiring, one scoring path shared with lmms-eval and `siuo score`,
and the real ``lm_eval`` CLI end to end with a tiny random Qwen2-VL on CPU.

lm-eval builds the tasks from ``yaml_tasks/lm_eval/siuo`` (``siuo tasks-path --harness lm-eval``); the
tests load them through lm-eval's own ``TaskManager`` and call the task's ``process_results`` and
aggregation functions the way lm-eval's evaluator does.
"""

import copy
import json
import subprocess
import sys
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import pytest

from siuo_dev.fake_judge_server import FakeOpenAIServer
from siuo_task.core import layouts, prompts
from siuo_task.core.data import CATEGORIES, load_items
from siuo_task.core.mcqa import CHOICES, FAILED_REQUEST_MARKER
from siuo_task.harnesses import call as harness_call_mod
from siuo_task.harnesses.lm_eval import hooks as lm_eval_adapter
from siuo_task.harnesses.paths import lm_eval_tasks_dir
from siuo_task.judge import JudgeUnavailable

from .conftest import PYTHON, harness_env

pytest.importorskip("lm_eval")

SIUO_CLI = [PYTHON, "-m", "siuo_task.cli"]
# Trailing whitespace, a whitespace-only answer and a missing (non-string) answer must score the
# same in every harness and in `siuo score`: one normalisation (strip) and a generation failure.
GEN_ANSWERS = ["SAFE and helpful", "UNSAFE advice \n", "a PARTIAL answer", "INEFFECTIVE refusal", "", "NOVERDICT rambling", " \n", None]


# ------------------------------------------------------------------------------------------- helpers


def mcqa_answer(item) -> str:
    """An answer per item that exercises every parser branch, chosen by question_id."""
    correct = item["correct_option"]
    wrong = next(c for c in CHOICES if c != correct)
    kind = item["question_id"] % MCQA_KINDS
    return [
        f"({correct})",
        f"{wrong}.",
        f"The correct option is {correct}",
        "I cannot answer that.",  # no letter: unparsed, seeded guess under the official policy
        "",
        f"{wrong} or {correct}",  # two candidates
        FAILED_REQUEST_MARKER + ": model down]",
        f"{correct}\n",  # trailing whitespace: the letter, in every harness (unparsed if not stripped)
        None,  # no text from the harness: a generation failure, never an answer
    ][kind]


MCQA_KINDS = 9


def gen_answers(item, n: int = 1) -> list:
    qid = item["question_id"]
    return [GEN_ANSWERS[(qid + i) % len(GEN_ANSWERS)] for i in range(n)]


@lru_cache(maxsize=2)
def task_manager(include_defaults: bool = False):
    """lm-eval's task manager over the SIUO folder (lm-eval's own ~10k task files only when asked)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(lm_eval_tasks_dir()), include_defaults=include_defaults)


def load_task(name: str):
    return task_manager().load([name])["tasks"][name]


def run_through_lm_eval(task, answer_for) -> dict:
    """What lm-eval's evaluator does after generation: process_results per doc, then each aggregation."""
    raw = defaultdict(list)
    for doc in task.eval_docs:
        for metric, value in task.process_results(doc, [answer_for(doc)]).items():
            raw[metric].append(value)
    aggregations = task.aggregation()
    return {metric: aggregations[metric](values) for metric, values in raw.items()}


def run_through_lmms_eval(task: str, process_results, answer_for) -> dict:
    """What lmms-eval does: build the docs (which begins the task's scoring session), process_results
    per doc, then each aggregation."""
    from siuo_task.harnesses.lmms_eval import hooks as lmms

    process_docs = {"siuo_mcqa": lmms.mcqa_process_docs, "siuo_gen": lmms.gen_process_docs, "siuo_gen_vote3": lmms.gen_vote3_process_docs}[
        task
    ]
    docs = process_docs(None)
    raw = defaultdict(list)
    for doc in docs:
        for metric, value in process_results(doc, [answer_for(doc)]).items():
            raw[metric].append(value)
    return {metric: getattr(lmms, f"aggregate_{metric}")(values, None) for metric, values in raw.items()}


def only_result(folder: Path, task: str) -> dict:
    files = sorted(folder.rglob(f"{task}_*.json"))
    assert len(files) == 1, f"expected one {task} result under {folder}, found {files}"
    return json.loads(files[0].read_text())


def share_of_ones(values) -> float:
    """Plain arithmetic for a rate: percentage of 1s among the votes that are not None, two decimals."""
    graded = [v for v in values if v is not None]
    return round(100 * sum(graded) / len(graded), 2)


def comparable(result: dict):
    """The parts of a result that must not depend on the harness (task name and run metadata aside)."""
    result = copy.deepcopy(result)
    result.pop("task")
    provenance = result.pop("provenance")
    for key in ("created", "harness", "protocol_variant"):
        provenance.pop(key, None)
    return result, provenance


def siuo_score(args, env_extra, cwd) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*SIUO_CLI, "score", *args], env=harness_env(env_extra), cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def judge_env(data_dir, clean_env):
    """A fake judge on 127.0.0.1 and the SIUO_* settings pointing at it (no judge cache: identical usage)."""
    with FakeOpenAIServer() as server:
        env = {
            "SIUO_DATA_DIR": str(data_dir),
            "SIUO_JUDGE_BASE_URL": server.url,
            "SIUO_JUDGE_API_KEY": "dummy",
            "SIUO_JUDGE_CACHE": "off",
            "SIUO_JUDGE_MODEL": "fake-judge",
            "SIUO_JUDGE_MAX_ERROR_RATE": "0.5",  # the plan's NOVERDICT answers are judge errors on purpose
        }
        for key, value in env.items():
            clean_env.setenv(key, value)
        yield env, clean_env


# ------------------------------------------------------------------------------------ task discovery


@pytest.mark.e2e  # the `siuo` CLI in a child process and lm-eval's full task index
def test_tasks_path_lists_the_lm_eval_tasks(data_dir, clean_env):
    proc = subprocess.run([*SIUO_CLI, "tasks-path", "--harness", "lm-eval"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    folder = Path(proc.stdout.strip())
    assert folder == lm_eval_tasks_dir() and (folder / "siuo" / "siuo_mcqa.yaml").is_file()
    manager = task_manager(include_defaults=True)  # no clash with lm-eval's own task names
    assert {"siuo_mcqa", "siuo_gen", "siuo_gen_vote3"} <= set(manager.all_subtasks)
    assert "siuo" in manager.all_groups
    for name in ("siuo_mcqa", "siuo_gen", "siuo_gen_vote3", "siuo"):
        assert Path(manager.task_index[name].yaml_path).parent == folder / "siuo"
    clean_env.setenv("SIUO_DATA_DIR", str(data_dir))
    clean_env.setenv("SIUO_JUDGE_PREFLIGHT", "0")
    assert set(task_manager().load(["siuo"])["tasks"]) == {"siuo_gen", "siuo_mcqa"}  # `--tasks siuo`
    # the lmms-eval YAMLs (their keys mean other things to lm-eval) are not in this folder
    assert not list(folder.rglob("utils.py")) and not (folder / "siuo" / "placeholder.jsonl").exists()


def test_requests_carry_image_official_prompt_and_decoding(data_dir, clean_env):
    from lm_eval.utils import convert_pil_to_hash
    from PIL import Image

    clean_env.setenv("SIUO_DATA_DIR", str(data_dir))
    clean_env.setenv("SIUO_JUDGE_PREFLIGHT", "0")
    loaded = task_manager().load(["siuo_mcqa", "siuo_gen", "siuo_gen_vote3"])["tasks"]
    expected = {
        "siuo_mcqa": ("mcqa", {"until": [], "max_gen_toks": 5, "temperature": 0.0, "do_sample": False}, 1),
        "siuo_gen": ("gen", {"until": [], "max_gen_toks": 500, "temperature": 0.0, "do_sample": False}, 1),
        "siuo_gen_vote3": ("gen", {"until": [], "max_gen_toks": 500, "temperature": 1.0, "do_sample": True}, 3),
    }
    for name, (setting, gen_kwargs, repeats) in expected.items():
        task = loaded[name]
        items = load_items(setting, data_dir)[0]
        assert len(task.eval_docs) == len(items) == 167
        assert task.OUTPUT_TYPE == "generate_until" and task.MULTIMODAL
        task.build_all_requests(limit=2)
        assert len(task.instances) == 2
        for instance, item in zip(sorted(task.instances, key=lambda i: i.doc_id), items):
            context, kwargs, multimodal = instance.args
            prompt = prompts.mcqa_prompt(item["question"], item["options"]) if setting == "mcqa" else prompts.gen_prompt(item["question"])
            assert context == "<image>" + prompt
            assert kwargs == gen_kwargs and instance.repeats == repeats
            (image,) = multimodal["visual"]
            with Image.open(item["image_path"]) as original:
                assert convert_pil_to_hash(image) == convert_pil_to_hash(original.convert("RGB"))


def test_unusable_judge_fails_while_the_task_is_built(data_dir, clean_env):
    clean_env.setenv("SIUO_DATA_DIR", str(data_dir))
    clean_env.setenv("SIUO_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    clean_env.setenv("SIUO_JUDGE_API_KEY", "dummy")
    with pytest.raises(JudgeUnavailable, match="127.0.0.1:9"):
        task_manager().load(["siuo_gen"])
    assert len(load_task("siuo_mcqa").eval_docs) == 167  # MCQA needs no judge


@pytest.mark.parametrize("flag", ["--predict_only", "-x"])
def test_predict_only_skips_the_judge_preflight(data_dir, clean_env, flag):
    clean_env.setenv("SIUO_DATA_DIR", str(data_dir))
    clean_env.setenv("SIUO_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    clean_env.setenv("SIUO_JUDGE_API_KEY", "dummy")
    clean_env.setattr(sys, "argv", ["/venv/bin/lm_eval", "run", "--model", "hf-multimodal", "--tasks", "siuo_gen", flag])
    assert len(load_task("siuo_gen").eval_docs) == 167
    assert lm_eval_adapter.sessions.current("siuo_gen").call.predict_only


@pytest.mark.parametrize(
    "model,placeholder",
    [("hf-multimodal", "<image>"), ("vllm-vlm", "<image>"), ("local-chat-completions", ""), ("openai-chat-completions", "")],
)
def test_image_placeholder_follows_the_model_class(data_dir, clean_env, model, placeholder):
    """Local VLM classes need lm-eval's <image> marker; API classes send the image apart and get the bare prompt."""
    clean_env.setenv("SIUO_DATA_DIR", str(data_dir))
    clean_env.setattr(sys, "argv", ["/venv/bin/lm_eval", "run", "--model", model, "--tasks", "siuo_mcqa"])
    task = load_task("siuo_mcqa")
    task.build_all_requests(limit=1)
    item = load_items("mcqa", data_dir)[0][0]
    assert task.instances[0].args[0] == placeholder + prompts.mcqa_prompt(item["question"], item["options"])
    clean_env.setenv("SIUO_IMAGE_PLACEHOLDER", "<img>")
    assert lm_eval_adapter.gen_doc_to_text(item) == "<img>" + item["question"]


def test_result_file_names_follow_the_harness_files(tmp_path, clean_env):
    """Beside the harness's results file, under a name derived from it; elsewhere a unique name."""
    lmms = tmp_path / "out" / "fake-a" / "20261202_010203_results.json"
    assert layouts.linked_result_path(lmms, {"date": "20261202_010203"}, "siuo_gen") == lmms.with_name("20261202_010203_siuo_siuo_gen.json")
    lm = tmp_path / "out" / "m" / "results_2026-12-02T01-02-03.5.json"
    start = 1764637323.123456
    assert layouts.linked_result_path(lm, json.loads(json.dumps({"date": start})), "siuo_gen_vote3") == lm.with_name(
        layouts.LM_EVAL.siuo_name(layouts.lm_eval_stamp(start), "siuo_gen_vote3")
    )
    assert layouts.linked_result_path(tmp_path / "x.json", {}, "siuo_gen") is None
    clean_env.chdir(tmp_path)
    assert layouts.results_folder() == tmp_path / "siuo_results"
    assert layouts.results_folder("runs/a.json") == Path("runs")
    clean_env.setenv("SIUO_RESULTS_DIR", str(tmp_path / "mine"))
    assert layouts.results_folder("runs") == tmp_path / "mine"
    # outside lm-eval's evaluator and command line: no harness folder, so a unique standalone name
    clean_env.setattr(sys, "argv", ["pytest"])
    call = lm_eval_adapter.harness_call()
    assert call.found_in == "nothing" and call.result_path("siuo_gen") is None


def test_provenance_records_the_command_without_secrets(clean_env):
    clean_env.setattr(
        sys,
        "argv",
        [
            "/venv/bin/lm_eval",
            "run",
            "--model",
            "local-chat-completions",
            "--tasks",
            "siuo_gen",
            "--limit",
            "5",
            "--model_args",
            "model=m,base_url=http://127.0.0.1:1/v1,api_key=sk-SECRET-123",
            "--gen_kwargs",
            "max_gen_toks=7",
        ],
    )
    call = lm_eval_adapter.harness_call()
    assert call.found_in == "the command line"
    info = harness_call_mod.harness_info(call, None)
    assert info["name"] == "lm-eval" and info["model"] == "local-chat-completions" and info["limit"] == 5
    assert info["model_args"]["model"] == "m" and info["model_args"]["api_key"] == "<redacted>"
    assert info["gen_kwargs"] == {"max_gen_toks": 7}
    assert "SECRET" not in json.dumps(info)
    assert info["task_generation_kwargs"] is None
    assert harness_call_mod.harness_info(call, lm_eval_adapter._task_config("siuo_mcqa"))["task_generation_kwargs"] == {
        "until": [],
        "max_gen_toks": 5,
        "temperature": 0.0,
        "do_sample": False,
    }
    vote3 = harness_call_mod.harness_info(call, lm_eval_adapter._task_config("siuo_gen_vote3"))["task_generation_kwargs"]
    assert vote3["repeats"] == 3 and vote3["temperature"] == 1.0 and vote3["max_gen_toks"] == 500


# ------------------------------------------------------------------------------------------- parity


@pytest.mark.e2e  # both harnesses' hooks in-process, and the judge for gen: the slow tier
def test_mcqa_parity_lm_eval_lmms_eval_and_siuo_score(data_dir, judge_env, tmp_path):
    env, mp = judge_env
    items = load_items("mcqa", data_dir)[0]
    answers = {item["question_id"]: mcqa_answer(item) for item in items}

    mp.setenv("SIUO_RESULTS_DIR", str(tmp_path / "lm_eval"))
    headline = run_through_lm_eval(load_task("siuo_mcqa"), lambda doc: answers[doc["question_id"]])
    via_lm_eval = only_result(tmp_path / "lm_eval", "siuo_mcqa")

    from siuo_task.harnesses.lmms_eval import hooks as lmms

    (tmp_path / "lmms").mkdir()
    mp.chdir(tmp_path / "lmms")  # lmms-eval without an output path writes ./siuo_results
    mp.setenv("SIUO_RESULTS_DIR", str(tmp_path / "lmms"))
    lmms_headline = run_through_lmms_eval("siuo_mcqa", lmms.mcqa_process_results, lambda doc: answers[doc["question_id"]])
    via_lmms = only_result(tmp_path / "lmms", "siuo_mcqa")

    submission = tmp_path / "siuo_mcqa-fixed.json"
    submission.write_text(json.dumps([{"question_id": q, "response_mcqa": a} for q, a in answers.items()]))
    siuo_score(["mcqa", str(submission), "--out", str(tmp_path / "cli.json")], env, tmp_path)
    via_cli = json.loads((tmp_path / "cli.json").read_text())

    assert headline == lmms_headline == via_lm_eval["metrics"] == via_cli["metrics"]
    assert comparable(via_lm_eval) == comparable(via_lmms) == comparable(via_cli)
    assert via_lm_eval["task"] == "siuo_mcqa"
    assert via_lm_eval["provenance"]["harness"]["name"] == "lm-eval"
    # the fixed answers exercised every branch, and the numbers follow from the per-item records
    records = via_lm_eval["items"]
    assert len(records) == 167 and set(via_lm_eval["by_category"]) == set(CATEGORIES)
    assert all(r["correct"] for r in records if r["question_id"] % MCQA_KINDS in (0, 2, 7))  # "B\n" is B everywhere
    assert not any(r["correct"] for r in records if r["question_id"] % MCQA_KINDS in (1, 6, 8))
    assert {r["question_id"] for r in records if r["unparsed"]} == {q for q in answers if q % MCQA_KINDS in (3, 4)}
    failed = {q for q in answers if q % MCQA_KINDS in (6, 8)}  # the marker, and no text at all
    assert {r["question_id"] for r in records if r["failed"]} == failed and via_lm_eval["counts"]["failed"] == len(failed)
    assert all(r["response"] is None for r in records if r["question_id"] % MCQA_KINDS == 8)
    assert headline["accuracy"] == round(100 * sum(r["correct"] for r in records) / 167, 2)
    assert headline["unparsed"] == round(100 * sum(r["unparsed"] for r in records) / 167, 2)


@pytest.mark.e2e
@pytest.mark.parametrize("task_name,n_answers", [("siuo_gen", 1), ("siuo_gen_vote3", 3)])
def test_gen_parity_lm_eval_lmms_eval_and_siuo_score(data_dir, judge_env, tmp_path, task_name, n_answers):
    env, mp = judge_env
    items = load_items("gen", data_dir)[0]
    answers = {item["question_id"]: gen_answers(item, n_answers) for item in items}

    def harness_reply(doc):  # one answer is a string; take_first_k hands process_results a list
        return answers[doc["question_id"]] if n_answers > 1 else answers[doc["question_id"]][0]

    mp.setenv("SIUO_RESULTS_DIR", str(tmp_path / "lm_eval"))
    headline = run_through_lm_eval(load_task(task_name), harness_reply)
    via_lm_eval = only_result(tmp_path / "lm_eval", task_name)

    from siuo_task.harnesses.lmms_eval import hooks as lmms

    process_results = lmms.gen_process_results if n_answers == 1 else lmms.gen_vote3_process_results
    (tmp_path / "lmms").mkdir()
    mp.chdir(tmp_path / "lmms")
    mp.setenv("SIUO_RESULTS_DIR", str(tmp_path / "lmms"))
    lmms_headline = run_through_lmms_eval(task_name, process_results, harness_reply)
    via_lmms = only_result(tmp_path / "lmms", task_name)

    submission = tmp_path / "siuo_gen-fixed.json"
    submission.write_text(json.dumps([{"question_id": q, "responses": a} for q, a in answers.items()]))
    siuo_score(["gen", str(submission), "--out", str(tmp_path / "cli.json"), "--quiet", "--task", task_name], env, tmp_path)
    via_cli = json.loads((tmp_path / "cli.json").read_text())

    assert headline == lmms_headline == via_lm_eval["metrics"] == via_cli["metrics"]
    assert comparable(via_lm_eval) == comparable(via_lmms) == comparable(via_cli)
    for result in (via_lm_eval, via_lmms, via_cli):  # the task's own name, in the result and its provenance
        assert result["task"] == result["provenance"]["task"] == task_name
    usage = via_lm_eval["provenance"]["judge"]["usage"]
    assert usage["calls"] > 0 and usage["cache_hits"] == 0  # one judging pass for the three metrics
    # expected verdicts follow from the fake judge's marker words
    records = {r["question_id"]: r for r in via_lm_eval["items"]}
    assert len(records) == 167 and set(via_lm_eval["by_category"]) == set(CATEGORIES)
    for qid, answer_list in answers.items():
        for i, answer in enumerate(answer_list):
            graded = answer is not None and "NOVERDICT" not in answer
            safe = int("UNSAFE" not in answer) if graded else None
            effective = int("INEFFECTIVE" not in answer) if graded else None
            assert records[qid]["safe_votes"][i] == safe, (qid, answer)
            assert records[qid]["effective_votes"][i] == effective, (qid, answer)
    # a missing answer is a generation failure, counted, never scored safe by the empty-answer rule
    failures = sum(a is None for answer_list in answers.values() for a in answer_list)
    assert via_lm_eval["counts"]["generation_failures"] == via_cli["counts"]["generation_failures"] == failures > 0
    # trailing whitespace reaches the judge stripped, whichever path: the same judge calls
    assert via_lm_eval["provenance"]["judge"]["usage"]["calls"] == via_lmms["provenance"]["judge"]["usage"]["calls"] == usage["calls"]
    assert via_lm_eval["judge_errors"]["safe"] > 0 and 0 < headline["safe"] < 100
    assert headline == {name: share_of_ones(r[name] for r in records.values()) for name in headline}


# ---------------------------------------------------------------------------------- the lm_eval CLI


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    from siuo_dev.tiny_models import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny_qwen2_vl"))


def run_lm_eval(args, out: Path, env_extra: dict) -> str:
    tasks_path = subprocess.run(
        [*SIUO_CLI, "tasks-path", "--harness", "lm-eval"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    cmd = [
        str(Path(PYTHON).with_name("lm_eval")),
        *args,
        "--device",
        "cpu",
        "--batch_size",
        "1",
        "--include_path",
        tasks_path,
        "--output_path",
        str(out),
        "--log_samples",
    ]
    proc = subprocess.run(cmd, env=harness_env(env_extra), cwd=out.parent, capture_output=True, text=True, timeout=600, check=False)
    return proc.stdout + proc.stderr


def linked_result(out: Path, task: str) -> dict:
    """The task's per-item file, beside lm-eval's results file and named after the run it records."""
    (results,) = sorted(out.glob("*/results_*.json"))
    path = layouts.linked_result_path(results, json.loads(results.read_text()), task)
    assert path is not None and path.is_file(), sorted(p.name for p in results.parent.iterdir())
    return json.loads(path.read_text())


def samples(out: Path, task: str) -> list:
    path = next(out.glob(f"*/samples_{task}_*.jsonl"))
    return sorted((json.loads(line) for line in path.read_text().splitlines() if line.strip()), key=lambda r: r["doc_id"])


@pytest.mark.e2e
def test_lm_eval_cli_runs_mcqa_and_gen_with_a_tiny_vlm(data_dir, tiny_vlm, tmp_path):
    from lm_eval.utils import convert_pil_to_hash
    from PIL import Image

    limit = 3
    out = tmp_path / "out"
    with FakeOpenAIServer() as judge:
        env = {
            "SIUO_DATA_DIR": str(data_dir),
            "SIUO_JUDGE_BASE_URL": judge.url,
            "SIUO_JUDGE_API_KEY": "dummy",
            "SIUO_JUDGE_CACHE": str(tmp_path / "judge_cache"),
            "SIUO_JUDGE_MODEL": "fake-judge",
        }
        log = run_lm_eval(
            [
                "--model",
                "hf-multimodal",
                "--model_args",
                f"pretrained={tiny_vlm},dtype=float32",
                "--tasks",
                "siuo_mcqa,siuo_gen",
                "--limit",
                str(limit),
                "--gen_kwargs",
                "max_gen_toks=8",
            ],
            out,
            env,
        )
        judge_calls = len(judge.requests)
    results_files = sorted(out.glob("*/results_*.json"))
    assert results_files, log[-4000:]
    harness = json.loads(results_files[-1].read_text())["results"]
    for task in ("siuo_mcqa", "siuo_gen"):
        assert len(list(out.rglob(f"siuo_{task}_*.json"))) == 1, log[-4000:]
        result = linked_result(out, task)
        logged = samples(out, task)
        # the numbers lm-eval reports are the per-item file's, and follow from its records
        assert {m: harness[task][f"{m},none"] for m in result["metrics"]} == result["metrics"]
        assert result["counts"]["n"] == len(logged) == limit
        records = {r["question_id"]: r for r in result["items"]}
        setting = "mcqa" if task == "siuo_mcqa" else "gen"
        items = load_items(setting, data_dir)[0][:limit]
        assert list(records) == [item["question_id"] for item in items]
        for row, item in zip(logged, items):
            assert row["doc"]["question_id"] == item["question_id"]
            reply = row["filtered_resps"][0]
            assert records[item["question_id"]]["response" if setting == "mcqa" else "answers"] == (reply if setting == "mcqa" else [reply])
            ((context, gen_kwargs, visual),) = [tuple(a.values()) for a in row["arguments"].values()]
            assert context.startswith("<image>") and item["question"] in context
            assert gen_kwargs["max_gen_toks"] == 8 and gen_kwargs["until"] == []
            with Image.open(item["image_path"]) as original:
                assert visual["visual"] == [convert_pil_to_hash(original.convert("RGB"))]
        if setting == "mcqa":
            assert result["metrics"]["accuracy"] == round(100 * sum(r["correct"] for r in records.values()) / limit, 2)
            assert result["metrics"]["unparsed"] == round(100 * sum(r["unparsed"] for r in records.values()) / limit, 2)
        else:
            assert result["metrics"] == {n: share_of_ones(r[n] for r in records.values()) for n in result["metrics"]}
            assert all(len(r["effective_votes"]) == 1 and r["effective_votes"][0] is not None for r in records.values())
            assert result["provenance"]["judge"]["model"] == "fake-judge"
        provenance = result["provenance"]["harness"]
        assert provenance["name"] == "lm-eval" and provenance["model"] == "hf-multimodal"
        assert provenance["model_args"]["pretrained"] == str(tiny_vlm)
        assert provenance["gen_kwargs"] == {"max_gen_toks": 8}
        assert provenance["task_generation_kwargs"]["max_gen_toks"] == (5 if setting == "mcqa" else 500)
    # the judge saw every generated answer (an empty one skips only the safety call)
    assert judge_calls >= limit
    assert "per-item records and provenance" in log


@pytest.mark.e2e
def test_lm_eval_cli_predict_only_with_chat_template_needs_no_judge(data_dir, tiny_vlm, tmp_path):
    out = tmp_path / "out"
    env = {"SIUO_DATA_DIR": str(data_dir), "SIUO_JUDGE_BASE_URL": "http://127.0.0.1:9/v1", "SIUO_JUDGE_API_KEY": "dummy"}
    log = run_lm_eval(
        [
            "--model",
            "hf-multimodal",
            "--model_args",
            f"pretrained={tiny_vlm},dtype=float32",
            "--tasks",
            "siuo_gen",
            "--limit",
            "2",
            "--gen_kwargs",
            "max_gen_toks=4",
            "--predict_only",
            "--apply_chat_template",
        ],
        out,
        env,
    )
    logged = samples(out, "siuo_gen")
    assert len(logged) == 2, log[-4000:]
    items = load_items("gen", data_dir)[0][:2]
    for row, item in zip(logged, items):
        context = row["arguments"]["gen_args_0"]["arg_0"]
        # the chat template turned lm-eval's <image> placeholder into Qwen2-VL's vision block
        assert "<|vision_start|><|image_pad|><|vision_end|>" + item["question"] in context
        assert "<image>" not in context
    assert not list(out.rglob("siuo_siuo_*.json")) and not (out / "siuo").exists()  # nothing scored, nothing judged
    assert "is reachable" not in log


@pytest.mark.e2e
def test_lm_eval_cli_with_an_api_model_sends_image_and_bare_prompt(data_dir, tmp_path):
    """lm-eval's local-chat-completions against the fake server (model: answers "A"; judge: marker words)."""
    limit = 4
    out = tmp_path / "out"
    with FakeOpenAIServer() as server:
        env = {
            "SIUO_DATA_DIR": str(data_dir),
            "SIUO_JUDGE_BASE_URL": server.url,
            "SIUO_JUDGE_API_KEY": "dummy",
            "SIUO_JUDGE_CACHE": "off",
            "OPENAI_API_KEY": "dummy",
        }
        log = run_lm_eval(
            [
                "--model",
                "local-chat-completions",
                "--apply_chat_template",
                "--tasks",
                "siuo_mcqa,siuo_gen",
                "--limit",
                str(limit),
                "--model_args",
                f"model=fake-lvlm,base_url={server.url}/chat/completions,num_concurrent=2,max_retries=1",
            ],
            out,
            env,
        )
        calls = list(server.requests)
    model_calls = [c for c in calls if c.get("model") == "fake-lvlm"]
    assert len(model_calls) == 2 * limit, log[-4000:]
    items = {s: load_items(s, data_dir)[0][:limit] for s in ("mcqa", "gen")}
    expected_texts = {prompts.mcqa_prompt(i["question"], i["options"]) for i in items["mcqa"]} | {i["question"] for i in items["gen"]}
    sent_texts = set()
    for call in model_calls:
        (message,) = call["messages"]
        image, text = message["content"]
        assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,")
        sent_texts.add(text["text"])
    assert sent_texts == expected_texts  # the official prompts, no "<image>" text
    mcqa = linked_result(out, "siuo_mcqa")
    # the fake model answers "A": accuracy is the share of items whose correct option is A
    assert mcqa["metrics"]["accuracy"] == round(100 * sum(i["correct_option"] == "A" for i in items["mcqa"]) / limit, 2)
    gen = linked_result(out, "siuo_gen")
    assert gen["metrics"] == {"safe": 100.0, "effective": 100.0, "safe_effective": 100.0}  # no marker words in "This is a fake answer."
    assert all(r["answers"] == ["This is a fake answer."] for r in gen["items"])
    harness = json.loads(next(out.glob("*/results_*.json")).read_text())["results"]
    assert harness["siuo_mcqa"]["accuracy,none"] == mcqa["metrics"]["accuracy"]
    assert harness["siuo_gen"]["safe_effective,none"] == gen["metrics"]["safe_effective"]
    # lm-eval 0.4.x picks a standard error by the aggregation function's identity (its own mean,
    # acc_all, bootstrappable ones) and has no per-item score hook (lmms-eval's score_key): SIUO's
    # aggregation scores, so lm-eval shows N/A; the 95% intervals are in the SIUO file (README).
    assert harness["siuo_mcqa"]["accuracy_stderr,none"] == "N/A" and mcqa["ci95"]["accuracy"]
    assert not any("_stderr_clt" in key for key in harness["siuo_mcqa"])
