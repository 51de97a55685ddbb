"""The real lmms-eval CLI runs SIUO through a real model class of the harness (``openai``) against a
fake OpenAI-compatible server on 127.0.0.1 that plays both the model and the judge.

The CLI exits 0 even when a task fails, so every test reads the result files, never the exit code.
"""

import json
import subprocess
from pathlib import Path

import pytest

from siuo_dev.fake_judge_server import EFFECTIVENESS_PREFIX, SAFETY_PREFIX, FakeOpenAIServer, default_responder, prompt_text
from siuo_dev.lmms_eval_runs import check_harness_stderr, openai_model_args
from siuo_dev.testing import score_gen_args
from siuo_task.cli import main as siuo_main
from siuo_task.core.data import load_items
from siuo_task.core.layouts import linked_result_path
from siuo_task.core.mcqa import CHOICES, FAILED_REQUEST_MARKER
from siuo_task.harnesses.paths import lmms_eval_tasks_dir
from siuo_task.judge import PREFLIGHT_PROMPT

from .conftest import PYTHON, harness_env
from .test_golden import GUESSES_BY_SORTED_ID

pytestmark = pytest.mark.e2e
SECRET = "sk-test-SECRET-e2e-777"
LIMIT = 8
GEN_ANSWERS = ["SAFE and helpful", "UNSAFE advice", "SAFE INEFFECTIVE refusal", ""]


def make_responder(data_dir):
    """Model answers that exercise every branch, chosen by question_id; judge replies from the default judge."""
    mcqa = {item["question"]: item for item in load_items("mcqa", data_dir, check_images=False)[0]}
    gen = {item["question"]: item for item in load_items("gen", data_dir, check_images=False)[0]}

    def respond(body):
        text = prompt_text(body)
        if text.startswith((SAFETY_PREFIX, EFFECTIVENESS_PREFIX)):
            return default_responder(body)
        if text.startswith("Answer the following multi-choice questions"):
            item = mcqa[text.split("Qusetion: ", 1)[1].split("\nOption:\n", 1)[0]]
            kind = item["question_id"] % 4
            if kind == 0:
                return f"({item['correct_option']})"
            if kind == 1:
                return next(c for c in CHOICES if c != item["correct_option"]) + "."
            if kind == 2:
                return "I cannot answer that."
            raise RuntimeError("the model is down")  # -> HTTP 500 -> the harness's failed-request marker
        return GEN_ANSWERS[gen[text.strip()]["question_id"] % 4]

    return respond


def pinned_guesses(data_dir):
    """The seeded guess of every MCQA item, from the pinned literal (not from the code under test)."""
    ids = sorted(item["question_id"] for item in load_items("mcqa", data_dir, check_images=False)[0])
    assert len(ids) == len(GUESSES_BY_SORTED_ID)
    return dict(zip(ids, GUESSES_BY_SORTED_ID))


def run_lmms_eval(args, out, env_extra):
    cmd = [PYTHON, "-m", "lmms_eval", *args, "--output_path", str(out), "--log_samples"]
    proc = subprocess.run(cmd, env=harness_env(env_extra), capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    results = sorted(out.glob("*/*_results.json"))
    return (json.loads(results[-1].read_text()) if results else None), log


def siuo_file(out, task):
    """The task's per-item file, where the run's results file names it (beside it, in the model's folder)."""
    files = []
    for results in sorted(out.glob("*/*_results.json")):
        path = linked_result_path(results, json.loads(results.read_text()), task)
        if path is not None and path.is_file():
            files.append(path)
    assert files, f"no per-item file for {task} beside the results under {out}: {sorted(out.rglob('*.json'))}"
    return json.loads(files[-1].read_text())


def samples(out, task):
    path = next(out.glob(f"*/*_samples_{task}.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def model_args(url):
    return openai_model_args(url, retry_backoff_s=0.05)


def test_mcqa_through_the_cli_without_include_path(data_dir, tmp_path):
    items = load_items("mcqa", data_dir, check_images=False)[0][:LIMIT]
    with FakeOpenAIServer(responder=make_responder(data_dir)) as server:
        results, log = run_lmms_eval(
            ["--model", "openai", "--model_args", model_args(server.url), "--tasks", "siuo_mcqa", "--limit", str(LIMIT)],
            tmp_path / "out",
            {"SIUO_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "dummy"},
        )
        model_calls = list(server.requests)
    assert results is not None, log[-3000:]
    # expected numbers, derived from the plan above
    correct = 0
    unparsed = 0
    for item in items:
        kind = item["question_id"] % 4
        if kind == 0:
            correct += 1
        elif kind == 2:
            unparsed += 1
            correct += pinned_guesses(data_dir)[item["question_id"]] == item["correct_option"]
    accuracy = round(100 * correct / LIMIT, 2)  # a percentage, two decimals
    row = results["results"]["siuo_mcqa"]
    assert row["accuracy,none"] == accuracy
    assert row["unparsed,none"] == round(100 * unparsed / LIMIT, 2)
    record = siuo_file(tmp_path / "out", "siuo_mcqa")
    assert record["metrics"]["accuracy"] == accuracy and record["counts"]["n"] == LIMIT
    assert record["counts"]["failed"] == sum(item["question_id"] % 4 == 3 for item in items) > 0
    assert [r["question_id"] for r in record["items"]] == [item["question_id"] for item in items]
    assert all(r["response"].startswith(FAILED_REQUEST_MARKER) for r in record["items"] if r["failed"])
    assert "model request(s) failed" in log
    # lmms-eval's standard errors, from the per-item scores of the one scoring (0 < accuracy < 100 here)
    assert 0 < accuracy < 100
    check_harness_stderr(row, record)
    # the image travelled with the official prompt
    first = model_calls[0]["messages"][0]["content"]
    assert any(part.get("type") == "image_url" for part in first)
    # same answers through `siuo score mcqa`: identical numbers
    rows = [
        {"question_id": s["accuracy"]["question_id"], "response_mcqa": s["accuracy"]["response"]}
        for s in samples(tmp_path / "out", "siuo_mcqa")
    ]
    (tmp_path / "siuo_mcqa-fake.json").write_text(json.dumps(rows))
    assert (
        siuo_main(
            ["score", "mcqa", str(tmp_path / "siuo_mcqa-fake.json"), "--out", str(tmp_path / "score.json"), "--data-dir", str(data_dir)]
        )
        == 0
    )
    scored = json.loads((tmp_path / "score.json").read_text())
    assert scored["metrics"] == record["metrics"] and scored["by_category"] == record["by_category"]
    assert [r["correct"] for r in scored["items"]] == [r["correct"] for r in record["items"]]


def test_group_with_judge_and_vote3(data_dir, tmp_path):
    cache = tmp_path / "judge_cache"
    env = {
        "SIUO_DATA_DIR": str(data_dir),
        "OPENAI_API_KEY": "dummy",
        "SIUO_JUDGE_API_KEY": SECRET,
        "SIUO_JUDGE_CACHE": str(cache),
        "SIUO_JUDGE_MODEL": "fake-judge",
    }
    with FakeOpenAIServer(responder=make_responder(data_dir)) as server:
        env["SIUO_JUDGE_BASE_URL"] = server.url
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        results, log = run_lmms_eval(
            ["--model", "openai", "--model_args", model_args(server.url), "--tasks", "siuo,siuo_gen_vote3", "--limit", str(LIMIT)],
            tmp_path / "out",
            env,
        )
        bodies = list(server.requests)
    assert results is not None, log[-3000:]
    out = tmp_path / "out"
    gen = siuo_file(out, "siuo_gen")
    vote3 = siuo_file(out, "siuo_gen_vote3")
    # greedy: one answer per item, verdicts follow the plan
    assert [len(r["answers"]) for r in gen["items"]] == [1] * LIMIT
    expected_safe = [0 if r["answers"][0].startswith("UNSAFE") else 1 for r in gen["items"]]
    assert [r["safe"] for r in gen["items"]] == expected_safe
    assert results["results"]["siuo_gen"]["safe,none"] == gen["metrics"]["safe"] == round(100 * sum(expected_safe) / LIMIT, 2)
    assert results["results"]["siuo_gen"]["effective,none"] == gen["metrics"]["effective"]
    assert results["results"]["siuo_gen"]["safe_effective,none"] == gen["metrics"]["safe_effective"]
    assert results["results"]["siuo_mcqa"]["accuracy,none"] is not None
    # vote3: three sampled answers per item through the harness's repeats, majority per item
    assert [len(r["answers"]) for r in vote3["items"]] == [3] * LIMIT
    assert results["results"]["siuo_gen_vote3"]["safe,vote3"] == vote3["metrics"]["safe"]
    # every SIUO metric has a numeric standard error in lmms-eval's results, vote3 included
    check_harness_stderr(results["results"]["siuo_gen"], gen)
    check_harness_stderr(results["results"]["siuo_mcqa"], siuo_file(out, "siuo_mcqa"))
    check_harness_stderr(results["results"]["siuo_gen_vote3"], vote3, "vote3")
    assert 0 < gen["metrics"]["safe"] < 100 and 0 < vote3["metrics"]["safe"] < 100  # the standard errors are not 0
    sampled = [b for b in bodies if not prompt_text(b).startswith(("As an AI judge", "Answer the following", PREFLIGHT_PROMPT))]
    assert len(sampled) == LIMIT + 3 * LIMIT and {b.get("temperature") for b in sampled} == {0, 1.0}
    # judge calls: one per distinct (item, answer, part); empty answers get no safety call
    judge_prompts = [prompt_text(b) for b in bodies if prompt_text(b).startswith("As an AI judge")]
    assert len(judge_prompts) == len(set(judge_prompts))
    for record in (gen, vote3):
        assert record["provenance"]["judge"]["model"] == "fake-judge"
        assert record["provenance"]["harness"]["name"] == "lmms-eval"
    # the judge's calls are in lmms-eval's own usage accounting (0.7.x), under each SIUO task
    judge_calls = {t: r["provenance"]["judge"]["usage"]["calls"] for t, r in (("siuo_gen", gen), ("siuo_gen_vote3", vote3))}
    # (the two tasks share the judge cache: answers judged for one are cache hits for the other, no call)
    assert sum(judge_calls.values()) > 0, judge_calls
    usage = results["usage"]
    assert usage["by_source"]["judge"]["n_api_calls"] == sum(judge_calls.values())
    tokens = [sum(r["provenance"]["judge"]["usage"][k] for r in (gen, vote3)) for k in ("prompt_tokens", "completion_tokens")]
    assert [usage["by_source"]["judge"]["input_tokens"], usage["by_source"]["judge"]["output_tokens"]] == tokens
    assert all(usage["by_task"].get(t, {}).get("n_api_calls", 0) >= n for t, n in judge_calls.items())
    assert gen["provenance"]["harness"]["task_generation_kwargs"] == {
        "max_new_tokens": 500,
        "temperature": 0,
        "do_sample": False,
        "until": [],
    }
    assert vote3["provenance"]["harness"]["task_generation_kwargs"]["repeats"] == 3
    # the same answers through `siuo score gen`: identical numbers, all from the cache
    rows = [{"question_id": s["safe"]["question_id"], "responses": s["safe"]["answers"]} for s in samples(out, "siuo_gen")]
    (tmp_path / "siuo_gen-fake.json").write_text(json.dumps(rows))
    with FakeOpenAIServer(port=port) as judge:  # the same endpoint: the cache is keyed by it
        code = siuo_main(
            score_gen_args(
                tmp_path / "siuo_gen-fake.json",
                tmp_path / "score.json",
                data_dir,
                judge.url,
                judge_model="fake-judge",
                cache=cache,
                quiet=True,
            )
        )
        assert code == 0 and judge.chat_calls == 0  # every verdict from the cache: no preflight needed
    scored = json.loads((tmp_path / "score.json").read_text())
    assert scored["metrics"] == gen["metrics"] and scored["by_category"] == gen["by_category"]
    # the key never reaches a file
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="ignore"), path


def test_unusable_judge_stops_before_generation(data_dir, tmp_path):
    with FakeOpenAIServer(responder=make_responder(data_dir)) as server:
        results, log = run_lmms_eval(
            ["--model", "openai", "--model_args", model_args(server.url), "--tasks", "siuo_gen", "--limit", "2"],
            tmp_path / "out",
            {"SIUO_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "dummy", "SIUO_JUDGE_BASE_URL": "http://127.0.0.1:9/v1"},
        )
        assert server.chat_calls == 0  # the model never generated
    assert results is None
    assert "SIUO judge" in log and "127.0.0.1:9" in log
    # predict-only runs need no judge
    with FakeOpenAIServer(responder=make_responder(data_dir)) as server:
        _, log = run_lmms_eval(
            ["--model", "openai", "--model_args", model_args(server.url), "--tasks", "siuo_gen", "--limit", "2", "--predict_only"],
            tmp_path / "out2",
            {"SIUO_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "dummy", "SIUO_JUDGE_BASE_URL": "http://127.0.0.1:9/v1"},
        )
        assert server.chat_calls == 2
    assert len(samples(tmp_path / "out2", "siuo_gen")) == 2


def test_simple_model_path_and_include_path_fallback(data_dir, tmp_path):
    """--force_simple uses doc_to_visual/doc_to_text; --include_path with `siuo tasks-path` is the stable fallback."""
    printed = subprocess.run([PYTHON, "-m", "siuo_task.cli", "tasks-path"], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(printed) == lmms_eval_tasks_dir() and (Path(printed) / "siuo" / "siuo_mcqa.yaml").is_file()
    with FakeOpenAIServer(responder=make_responder(data_dir)) as server:
        results, log = run_lmms_eval(
            [
                "--model",
                "openai",
                "--force_simple",
                "--model_args",
                model_args(server.url),
                "--tasks",
                "siuo_mcqa",
                "--limit",
                "4",
                "--include_path",
                printed,
            ],
            tmp_path / "out",
            {"SIUO_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "dummy"},
        )
        first = prompt_text(server.requests[0])
    assert results is not None, log[-3000:]
    assert first.startswith("Answer the following multi-choice questions") and first.rstrip().endswith("Chocie:")
    assert results["results"]["siuo_mcqa"]["accuracy,none"] == siuo_file(tmp_path / "out", "siuo_mcqa")["metrics"]["accuracy"]


def test_a_task_of_another_source_with_a_siuo_name_is_named_and_chosen(data_dir, tmp_path):
    """An old copy of the SIUO YAMLs on --include_path (here: siuo_mcqa with 7 new tokens) comes before
    siuo-task's folder in lmms-eval's index: the real CLI logs the error naming both files and the switch,
    and runs the copy; with SIUO_TASK_SOURCE=siuo-task it runs siuo-task's (5 new tokens)."""
    import shutil

    copy = tmp_path / "old_copy"
    shutil.copytree(lmms_eval_tasks_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    yaml_path = copy / "siuo" / "siuo_mcqa.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("max_new_tokens: 5", "max_new_tokens: 7"))
    ran = {}
    for choice in (None, "siuo-task"):
        env = {"SIUO_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "dummy", **({"SIUO_TASK_SOURCE": choice} if choice else {})}
        with FakeOpenAIServer(responder=make_responder(data_dir)) as server:
            results, log = run_lmms_eval(
                [
                    "--model",
                    "openai",
                    "--model_args",
                    model_args(server.url),
                    "--tasks",
                    "siuo_mcqa",
                    "--limit",
                    "2",
                    "--include_path",
                    str(copy),
                ],
                tmp_path / f"out_{choice}",
                env,
            )
        assert results is not None, log[-3000:]
        ran[choice] = (results["configs"]["siuo_mcqa"]["generation_kwargs"]["max_new_tokens"], log)
    tokens, log = ran[None]
    errors = [line for line in log.splitlines() if "ERROR" in line and "siuo-task:" in line]
    assert tokens == 7 and len(errors) >= 1, log[-3000:]  # lmms-eval's priority kept, and said
    assert str(yaml_path) in errors[0] and str(lmms_eval_tasks_dir() / "siuo" / "siuo_mcqa.yaml") in errors[0]
    assert "SIUO_TASK_SOURCE=siuo-task" in errors[0]
    tokens, log = ran["siuo-task"]
    assert tokens == 5 and not [line for line in log.splitlines() if "ERROR" in line and "siuo-task:" in line]


# ------------------------------------------------- two evaluations in one process (scoring sessions)

TWO_EVALUATIONS = """
import json, os, sys
from lmms_eval.evaluator import simple_evaluate
from lmms_eval.tasks import TaskManager
from siuo_task.harnesses.paths import lmms_eval_tasks_dir

plan = json.loads(sys.argv[1])
manager = TaskManager(include_path=str(lmms_eval_tasks_dir()))
found = []
for env in plan["runs"]:
    os.environ.update(env)
    results = simple_evaluate(model="openai", model_args=plan["model_args"], tasks=["siuo_gen", "siuo_mcqa"],
                              limit=plan["limit"], task_manager=manager, log_samples=False)
    found.append(results["results"])
print("RESULTS=" + json.dumps(found))
"""


def strict_judge(body):
    """A judge that finds every answer unsafe and ineffective (another verdict than the default judge's)."""
    text = prompt_text(body).lstrip()
    if text.startswith(SAFETY_PREFIX):
        return "[Reasons:] strict. [Safety Judgement:] False"
    if text.startswith(EFFECTIVENESS_PREFIX):
        return "[Reasons:] strict. [Effectiveness Judgement:] Ineffective"
    raise RuntimeError("not a judge prompt")


def test_two_evaluations_in_one_process_each_get_their_own_result(data_dir, tmp_path):
    """Same answers, two judges and two MCQA policies, two simple_evaluate calls in one Python process:
    each evaluation scores afresh with its own settings and writes its own result file."""
    gen_items = load_items("gen", data_dir, check_images=False)[0][:LIMIT]
    mcqa_items = load_items("mcqa", data_dir, check_images=False)[0][:LIMIT]
    with (
        FakeOpenAIServer(responder=make_responder(data_dir)) as model,
        FakeOpenAIServer() as judge_a,
        FakeOpenAIServer(responder=strict_judge) as judge_b,
    ):
        common = {"SIUO_DATA_DIR": str(data_dir), "SIUO_JUDGE_API_KEY": "x", "SIUO_JUDGE_CACHE": "off"}
        plan = {
            "model_args": model_args(model.url),
            "limit": LIMIT,
            "runs": [
                {"SIUO_JUDGE_BASE_URL": judge_a.url, "SIUO_JUDGE_MODEL": "judge-a", "SIUO_MCQA_POLICY": "official"},
                {"SIUO_JUDGE_BASE_URL": judge_b.url, "SIUO_JUDGE_MODEL": "judge-b", "SIUO_MCQA_POLICY": "strict"},
            ],
        }
        proc = subprocess.run(
            [PYTHON, "-c", TWO_EVALUATIONS, json.dumps(plan)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=harness_env({**common, "OPENAI_API_KEY": "dummy"}),
        )
        # judging calls only: the judge preflight's check call is not one
        calls_a, calls_b = ([b for b in judge.requests if not prompt_text(b).startswith(PREFLIGHT_PROMPT)] for judge in (judge_a, judge_b))
    log = proc.stdout + proc.stderr
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULTS=")), None)
    assert proc.returncode == 0 and line, log[-4000:]
    first, second = json.loads(line[len("RESULTS=") :])
    # both judges were asked: one safety call per non-empty answer, one effectiveness call per answer
    answers = [GEN_ANSWERS[item["question_id"] % 4] for item in gen_items]
    assert len(calls_a) == len(calls_b) == sum(1 for a in answers if a) + len(answers)
    # each evaluation's numbers follow from its own judge and policy
    # every answer gets a verdict here: the rate is the share of safe answers, a percentage with two decimals
    assert first["siuo_gen"]["safe,none"] == round(100 * sum(not a.startswith("UNSAFE") for a in answers) / LIMIT, 2)
    assert second["siuo_gen"]["safe,none"] == round(100 * sum(not a for a in answers) / LIMIT, 2)  # empty: safe by rule
    assert second["siuo_gen"]["effective,none"] == 0.0 < first["siuo_gen"]["effective,none"]
    guessed = [i for i in mcqa_items if i["question_id"] % 4 == 2 and pinned_guesses(data_dir)[i["question_id"]] == i["correct_option"]]
    assert guessed, "the plan needs an unparsed item whose seeded guess is right, so the two policies differ"
    correct = sum(i["question_id"] % 4 == 0 for i in mcqa_items)
    assert first["siuo_mcqa"]["accuracy,none"] == round(100 * (correct + len(guessed)) / LIMIT, 2)
    assert second["siuo_mcqa"]["accuracy,none"] == round(100 * correct / LIMIT, 2)
    # and each wrote its own result file (no harness output folder: ./siuo_results), naming its own judge / policy
    files = {
        task: [json.loads(p.read_text()) for p in sorted((tmp_path / "siuo_results").glob(f"{task}_[0-9]*.json"))]
        for task in ("siuo_gen", "siuo_mcqa")
    }
    assert len(files["siuo_gen"]) == len(files["siuo_mcqa"]) == 2, log[-4000:]
    by_judge = {r["provenance"]["judge"]["model"]: r for r in files["siuo_gen"]}
    assert set(by_judge) == {"judge-a", "judge-b"}
    assert by_judge["judge-a"]["metrics"]["safe"] == first["siuo_gen"]["safe,none"]
    assert by_judge["judge-b"]["metrics"]["safe"] == second["siuo_gen"]["safe,none"]
    assert by_judge["judge-a"]["provenance"]["judge"]["endpoint_host"] != by_judge["judge-b"]["provenance"]["judge"]["endpoint_host"]
    by_policy = {r["provenance"]["mcqa_policy"]: r for r in files["siuo_mcqa"]}
    assert set(by_policy) == {"official", "strict"}
    assert by_policy["official"]["metrics"]["accuracy"] == first["siuo_mcqa"]["accuracy,none"]
    assert by_policy["strict"]["metrics"]["accuracy"] == second["siuo_mcqa"]["accuracy,none"]
    sessions = {r["provenance"]["harness"]["session"] for task in files for r in files[task]}
    assert len(sessions) == 4  # one scoring session per task and evaluation
    assert all(r["provenance"]["harness"]["model"] == "openai" for task in files for r in files[task])
