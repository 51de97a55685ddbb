"""SIUO in inspect_ai end to end: the real ``inspect eval`` CLI, inspect's own OpenAI provider pointed
at the fake OpenAI-compatible server (which plays the model under test and SIUO's judge), siuo-task
installed from this checkout's wheel into a site-packages folder and run from an unrelated folder
(the ``siuo_task/`` prefix comes from the entry point alone).

- parity: on the same answers, ``inspect eval`` gives exactly the result ``siuo score`` gives (every
  number, per-item record and interval), for siuo_gen, siuo_gen_vote3 and siuo_mcqa; the inspect log's
  headline metrics and intervals equal the SIUO file's; the log shows each sample's verdicts and reasons;
- the SIUO per-item file lands beside the log, and ``siuo verify``/``report``/``compare``/``export`` read it;
- an invalid result, an unusable judge and a failed task each fail the command (exit 4, 3, 1);
- keys go only to their own endpoint.
"""

import copy
import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from siuo_dev.fake_judge_server import FakeOpenAIServer, default_responder, prompt_text
from siuo_dev.testing import build_wheel
from siuo_task.core import layouts, prompts
from siuo_task.core.data import CATEGORIES, load_items
from siuo_task.core.mcqa import CHOICES, FAILED_REQUEST_MARKER
from siuo_task.judge.dry_run import EFFECTIVENESS_PREFIX, SAFETY_PREFIX

from .conftest import PYTHON, REPO, harness_env

pytestmark = pytest.mark.e2e
pytest.importorskip("inspect_ai")

INSPECT = str(Path(PYTHON).with_name("inspect"))
SIUO = [PYTHON, "-m", "siuo_task.cli"]
MODEL = "openai/gpt-4o-siuo-fake"  # a gpt name: inspect's OpenAI provider sends temperature as asked
# the answers of the lmms-eval / lm-eval parity tests: markers for the fake judge, whitespace, an empty
# answer, and None: the provider's content filter refuses the request (a generation failure)
GEN_ANSWERS = ["SAFE and helpful", "UNSAFE advice \n", "a PARTIAL answer", "INEFFECTIVE refusal", "", "NOVERDICT rambling", " \n", None]
CONTENT_FILTER = {
    "status": 400,
    "error": {"message": "The request was blocked by the content filter.", "type": "invalid_request_error", "code": "content_filter"},
}


def gen_answers(item, n: int) -> list:
    return [GEN_ANSWERS[(item["question_id"] + i) % len(GEN_ANSWERS)] for i in range(n)]


def mcqa_answer(item):
    correct = item["correct_option"]
    wrong = next(c for c in CHOICES if c != correct)
    return [
        f"({correct})",
        f"{wrong}.",
        f"The correct option is {correct}",
        "I cannot answer that.",
        "",
        f"{wrong} or {correct}",
        FAILED_REQUEST_MARKER + ": model down]",
        f"{correct}\n",
        None,
    ][item["question_id"] % 9]


class Model:
    """The model under test, played by the fake server: a planned answer per prompt (the i-th request
    for an item gets its i-th answer), and SIUO's judge for the judge prompts."""

    def __init__(self, plan: dict):
        self.plan = plan  # prompt text -> [answers]
        self.calls: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, body: dict):
        text = prompt_text(body)
        if text.lstrip().startswith((SAFETY_PREFIX, EFFECTIVENESS_PREFIX)):
            return default_responder(body)
        with self.lock:
            i = self.calls[text]
            self.calls[text] += 1
        answers = self.plan[text]
        answer = answers[i % len(answers)]
        return CONTENT_FILTER if answer is None else answer


def gen_plan(data_dir, n: int) -> dict:
    return {prompts.gen_prompt(item["question"]): gen_answers(item, n) for item in load_items("gen", data_dir)[0]}


def mcqa_plan(data_dir) -> dict:
    return {prompts.mcqa_prompt(item["question"], item["options"]): [mcqa_answer(item)] for item in load_items("mcqa", data_dir)[0]}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """siuo-task as ``pip install`` puts it: this checkout's wheel in a site-packages folder."""
    root = tmp_path_factory.mktemp("inspect_site")
    build_wheel(root / "wheel")
    target = root / "site-packages"
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), *map(str, (root / "wheel").glob("*.whl"))],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return target


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, log_dir: Path, seconds: float):
        self.proc, self.log_dir, self.seconds = proc, log_dir, seconds
        self.output = proc.stdout + proc.stderr

    def log(self, task: str) -> Path:
        logs = [
            p
            for p in self.log_dir.iterdir()
            if p.suffix in (".eval", ".json") and p.name.startswith("20") and f"_{task.replace('_', '-')}_" in p.name
        ]
        assert len(logs) == 1, (sorted(p.name for p in self.log_dir.iterdir()), self.output[-3000:])
        return logs[0]

    def siuo_file(self, task: str) -> Path:
        return layouts.linked_result_path(self.log(task), {}, task)

    def siuo(self, task: str) -> dict:
        path = self.siuo_file(task)
        assert path.is_file(), (sorted(p.name for p in self.log_dir.iterdir()), self.output[-3000:])
        return json.loads(path.read_text())


def inspect_eval(site, workdir: Path, tasks: list, env: dict, *args) -> Run:
    workdir.mkdir(parents=True, exist_ok=True)
    log_dir = workdir / "logs"
    cmd = [
        INSPECT,
        "eval",
        *[f"siuo_task/{t}" for t in tasks],
        "--model",
        MODEL,
        "--log-dir",
        str(log_dir),
        "--display",
        "plain",
        "--max-connections",
        "16",
        *args,
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=harness_env({"PYTHONPATH": str(site), **env}), cwd=workdir, capture_output=True, text=True, timeout=600)
    return Run(proc, log_dir, time.monotonic() - start)


def judge_env(data_dir, server, **extra) -> dict:
    return {
        "SIUO_DATA_DIR": str(data_dir),
        "OPENAI_BASE_URL": server.url,
        "OPENAI_API_KEY": "model-key",
        "SIUO_JUDGE_BASE_URL": server.url,
        "SIUO_JUDGE_API_KEY": "judge-key",
        "SIUO_JUDGE_CACHE": "off",
        "SIUO_JUDGE_MODEL": "fake-judge",
        "SIUO_JUDGE_MAX_ERROR_RATE": "0.5",
        **extra,
    }


def siuo(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SIUO, *map(str, args)],
        env=harness_env({"PYTHONPATH": str(REPO), **(env or {})}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def comparable(result: dict):
    """The parts of a result that must not depend on the harness (task name and run metadata aside)."""
    result = copy.deepcopy(result)
    result.pop("task")
    provenance = result.pop("provenance")
    for key in ("created", "harness", "protocol_variant"):
        provenance.pop(key, None)
    return result, provenance


def log_header(path: Path):
    from inspect_ai.log import read_eval_log

    return read_eval_log(str(path), header_only=True)


# ------------------------------------------------------------------------------------------- the runs


@pytest.fixture(scope="module")
def parity_runs(site, data_dir, tmp_path_factory):
    """One inspect run of each task over all 167 items, and `siuo score` on the answers each recorded."""
    root = tmp_path_factory.mktemp("inspect_parity")
    plans = {"siuo_gen": gen_plan(data_dir, 1), "siuo_gen_vote3": gen_plan(data_dir, 3), "siuo_mcqa": mcqa_plan(data_dir)}
    runs = {}
    for task, plan in plans.items():
        model = Model(plan)
        with FakeOpenAIServer(responder=model, keep_images=False) as server:
            run = inspect_eval(site, root / task, [task], judge_env(data_dir, server))
            run.requests = list(server.requests)
            run.server_url = server.url
            assert run.proc.returncode == 0, run.output[-4000:]
            via_inspect = run.siuo(task)
            # `siuo score` on the answers the inspect run recorded, in the official submission format
            if task == "siuo_mcqa":
                rows = [{"question_id": r["question_id"], "response_mcqa": r["response"]} for r in via_inspect["items"]]
                args = ["mcqa"]
            else:
                rows = [{"question_id": r["question_id"], "responses": r["answers"]} for r in via_inspect["items"]]
                args = ["gen", "--quiet", "--task", task]
            (root / f"{task}.submission.json").write_text(json.dumps(rows))
            proc = siuo(
                "score",
                *args,
                root / f"{task}.submission.json",
                "--out",
                root / f"{task}.cli.json",
                env=judge_env(data_dir, server),
                cwd=root,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
        run.cli = json.loads((root / f"{task}.cli.json").read_text())
        run.plan = plan
        runs[task] = run
    return runs


@pytest.mark.parametrize("task", ["siuo_gen", "siuo_gen_vote3", "siuo_mcqa"])
def test_inspect_gives_exactly_what_siuo_score_gives(parity_runs, data_dir, task):
    run = parity_runs[task]
    via_inspect, via_cli = run.siuo(task), run.cli
    assert comparable(via_inspect) == comparable(via_cli)
    assert via_inspect["task"] == via_inspect["provenance"]["task"] == task and via_inspect["valid"] is True
    assert len(via_inspect["items"]) == 167 and set(via_inspect["by_category"]) == set(CATEGORIES)
    harness = via_inspect["provenance"]["harness"]
    assert harness["name"] == "inspect-ai" and harness["model"] == MODEL and "model_decoding" not in harness
    # the inspect log's headline metrics and intervals are the SIUO file's
    header = log_header(run.log(task))
    assert header.status == "success"
    (score,) = header.results.scores
    logged = {name: metric.value for name, metric in score.metrics.items()}
    for name, value in via_inspect["metrics"].items():
        assert logged[name] == value, (name, logged)
    for name, (low, high) in via_inspect["ci95"].items():
        assert (logged[f"{name}_ci95_low"], logged[f"{name}_ci95_high"]) == (low, high)
    assert header.results.early_stopping.metadata["siuo_result_file"] == str(run.siuo_file(task))


@pytest.mark.parametrize("task,n", [("siuo_gen", 1), ("siuo_gen_vote3", 3)])
def test_the_answers_are_the_models_and_the_verdicts_follow_the_judge(parity_runs, data_dir, task, n):
    run = parity_runs[task]
    result = run.siuo(task)
    items = {i["question_id"]: i for i in load_items("gen", data_dir)[0]}
    for record in result["items"]:
        planned = gen_answers(items[record["question_id"]], n)
        assert Counter(map(repr, record["answers"])) == Counter(map(repr, planned)), record["question_id"]  # epochs in any order
        for i, answer in enumerate(record["answers"]):
            graded = answer is not None and "NOVERDICT" not in answer
            assert record["safe_votes"][i] == (int("UNSAFE" not in answer) if graded else None)
            assert record["effective_votes"][i] == (int("INEFFECTIVE" not in answer) if graded else None)
    failures = sum(a is None for r in result["items"] for a in r["answers"])
    assert result["counts"]["generation_failures"] == failures > 0  # the content filter: counted, never safe by rule
    assert result["counts"]["answers"] == 167 * n
    assert result["judge_errors"]["safe"] > 0 and 0 < result["metrics"]["safe"] < 100
    # decoding as the protocol asks, as inspect's provider sent it; the image first, then the official prompt
    model_calls = [r for r in run.requests if r.get("model") == MODEL.split("/", 1)[1]]
    assert len(model_calls) == 167 * n
    for call in model_calls:
        (message,) = call["messages"]
        image, text = message["content"]
        assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,")
        assert text["text"] in run.plan
        assert call.get("max_tokens") == 500 and call.get("temperature") == (0.0 if n == 1 else 1.0)
        assert call.get("top_p") == (None if n == 1 else 1.0) and "stop" not in call
    # each judge request sent once (identical ones too, as `siuo score` does): no second pass at the end
    usage = result["provenance"]["judge"]["usage"]
    assert usage["calls"] == run.cli["provenance"]["judge"]["usage"]["calls"] and usage["cache_hits"] == 0
    judge_calls = [r for r in run.requests if r.get("model") == "fake-judge"]
    assert len(judge_calls) == 1 + usage["calls"]  # and the one check call before generation


def test_mcqa_parses_every_branch_as_siuo_score(parity_runs, data_dir):
    result = parity_runs["siuo_mcqa"].siuo("siuo_mcqa")
    records = result["items"]
    assert all(r["correct"] for r in records if r["question_id"] % 9 in (0, 2, 7))  # "B\n" is B everywhere
    assert {r["question_id"] for r in records if r["unparsed"]} == {r["question_id"] for r in records if r["question_id"] % 9 in (3, 4)}
    assert {r["question_id"] for r in records if r["failed"]} == {r["question_id"] for r in records if r["question_id"] % 9 in (6, 8)}
    assert all(r["response"] is None for r in records if r["question_id"] % 9 == 8)  # the content filter: no text
    calls = [r for r in parity_runs["siuo_mcqa"].requests if r.get("model") == MODEL.split("/", 1)[1]]
    assert all(c.get("max_tokens") == 5 and c.get("temperature") == 0.0 for c in calls) and len(calls) == 167


def test_the_log_shows_each_samples_verdicts_with_the_judges_reasons(parity_runs):
    from inspect_ai.log import read_eval_log

    run = parity_runs["siuo_gen_vote3"]
    log = read_eval_log(str(run.log("siuo_gen_vote3")))
    result = {r["question_id"]: r for r in run.siuo("siuo_gen_vote3")["items"]}
    reduced = {s.sample_id: s for s in log.reductions[0].samples}
    for sample in log.samples:
        score = sample.scores["siuo_judge"]
        assert set(score.value) == {"safe", "effective", "safe_effective"}
        assert score.answer == score.metadata["answer"]
        if score.answer and "NOVERDICT" not in score.answer and score.answer.strip():
            assert "Safety judge: [Reasons:]" in score.explanation and "Effectiveness judge: [Reasons:]" in score.explanation
    for qid, record in result.items():  # the per-item vote the log shows is the result file's
        assert {k: reduced[qid].value[k] for k in ("safe", "effective", "safe_effective")} == {
            k: record[k] for k in ("safe", "effective", "safe_effective")
        }


# -------------------------------------------------------------------------- the results commands


def test_siuo_verify_report_compare_and_export_read_inspect_runs(parity_runs, data_dir, tmp_path):
    # one log folder with two tasks of the model (as `inspect eval` of both writes it)
    both = tmp_path / "logs"
    both.mkdir()
    for task in ("siuo_gen", "siuo_mcqa"):
        run = parity_runs[task]
        for path in (run.log(task), run.siuo_file(task)):
            (both / path.name).write_bytes(path.read_bytes())
    proc = siuo("verify", both, "--data-dir", data_dir)
    assert proc.returncode == 0 and "2 of 2 result(s) verified" in proc.stdout, proc.stdout + proc.stderr
    assert (
        "the harness's headline numbers and standard errors for siuo_gen" in proc.stdout
        and "the harness's headline numbers and standard errors for siuo_mcqa" in proc.stdout
    )
    proc = siuo("report", both, "--out", tmp_path / "report.md")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (tmp_path / "report.md").read_text()
    gen, mcqa = parity_runs["siuo_gen"].siuo("siuo_gen"), parity_runs["siuo_mcqa"].siuo("siuo_mcqa")
    row = next(line for line in report.splitlines() if line.startswith(f"| {MODEL} |"))
    assert f"{gen['metrics']['safe']:.2f}" in row and f"{mcqa['metrics']['accuracy']:.2f}" in row and "NOT VERIFIED" not in row, row
    # two logs, given as files: the paired comparison
    vote3 = parity_runs["siuo_gen_vote3"]
    proc = siuo("compare", parity_runs["siuo_gen"].log("siuo_gen"), vote3.log("siuo_gen_vote3"), "--allow-different-judges")
    assert proc.returncode == 0 and "safe_effective" in proc.stdout, proc.stdout + proc.stderr
    proc = siuo("export", both, "--to", "official", "--out", tmp_path / "official", "--data-dir", data_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exported = json.loads((tmp_path / "official" / "siuo_gen-openai_gpt-4o-siuo-fake.json").read_text())
    assert {r["question_id"]: r["responses"] for r in exported} == {r["question_id"]: r["answers"] for r in gen["items"]}


# ------------------------------------------------------------------------------------------ failures


def test_an_invalid_result_fails_inspect_eval(site, data_dir, tmp_path):
    """Every answer draws no verdict from the judge: the result is written, marked invalid, the log says
    error with no headline numbers, and the command exits 4 with the reason."""
    plan = {k: ["NOVERDICT, says the model"] for k in gen_plan(data_dir, 1)}
    with FakeOpenAIServer(responder=Model(plan), keep_images=False) as server:
        run = inspect_eval(site, tmp_path, ["siuo_gen"], judge_env(data_dir, server, SIUO_JUDGE_MAX_ERROR_RATE="0.05"), "--limit", "6")
    assert run.proc.returncode == 4, run.output[-4000:]
    assert "INVALID" in run.proc.stderr and "judge errors on 12 of 12 judge calls" in run.proc.stderr, run.proc.stderr[-2000:]
    result = run.siuo("siuo_gen")
    assert result["valid"] is False and result["invalid_reasons"]
    header = log_header(run.log("siuo_gen"))
    assert header.status == "error" and "INVALID" in header.error.message and header.results is None
    proc = siuo("verify", run.log_dir)
    assert proc.returncode == 1 and "marked invalid" in proc.stdout, proc.stdout


def test_an_unusable_judge_stops_the_run_before_the_model_generates(site, data_dir, tmp_path):
    with FakeOpenAIServer(require_key="the-real-judge-key") as judge, FakeOpenAIServer() as model:
        env = judge_env(data_dir, judge)
        env["OPENAI_BASE_URL"] = model.url
        run = inspect_eval(site, tmp_path, ["siuo_gen"], env, "--limit", "3")
        model_calls = model.chat_calls
    assert run.proc.returncode == 3, run.output[-4000:]
    assert "401" in run.proc.stderr and "SIUO_JUDGE_API_KEY" in run.output, run.proc.stderr[-2000:]
    assert model_calls == 0  # nothing generated
    assert log_header(run.log("siuo_gen")).status == "error"


def test_a_failed_siuo_task_fails_the_command_and_mcqa_needs_no_judge(site, data_dir, tmp_path):
    """The model's endpoint refuses the key: inspect's task errors; with a SIUO task the command fails
    (inspect alone would exit 0). MCQA with no judge configured at all makes no judge call."""
    with FakeOpenAIServer(require_key="another-key") as model:
        env = {"SIUO_DATA_DIR": str(data_dir), "OPENAI_BASE_URL": model.url, "OPENAI_API_KEY": "model-key"}
        run = inspect_eval(site, tmp_path, ["siuo_mcqa"], env, "--limit", "2")
    assert run.proc.returncode == 1, run.output[-4000:]
    assert "no valid SIUO result" in run.proc.stderr and "siuo_mcqa" in run.proc.stderr


def test_keys_go_only_to_their_own_endpoint(site, data_dir, tmp_path):
    with (
        FakeOpenAIServer(require_key="judge-key", keep_images=False) as judge,
        FakeOpenAIServer(require_key="model-key", keep_images=False) as model,
    ):
        env = judge_env(data_dir, judge)
        env["OPENAI_BASE_URL"] = model.url
        # JSON logs: the files are plain text to search (and the reader takes them as .eval logs)
        run = inspect_eval(site, tmp_path, ["siuo_gen", "siuo_mcqa"], env, "--limit", "3", "--log-format", "json")
        to_judge, to_model = list(judge.requests), list(model.requests)
    assert run.proc.returncode == 0, run.output[-4000:]
    assert to_judge and to_model
    auth = lambda r: {k.lower(): v for k, v in r["_headers"].items()}.get("authorization")  # noqa: E731
    assert {auth(r) for r in to_judge} == {"Bearer judge-key"} and {auth(r) for r in to_model} == {"Bearer model-key"}
    assert not any("api-key" in {k.lower() for k in r["_headers"]} for r in to_judge + to_model)
    assert {p.suffix for p in run.log_dir.iterdir()} == {".json"} and len(list(run.log_dir.iterdir())) == 4  # 2 logs, 2 SIUO files
    for path in run.log_dir.iterdir():
        text = path.read_bytes()
        assert b"judge-key" not in text and b"model-key" not in text, path.name
    assert "judge-key" not in run.output and "model-key" not in run.output
    proc = siuo("verify", run.log_dir)  # JSON logs read as .eval logs (incomplete: 3 of 167 items)
    assert proc.stdout.count("the harness's headline numbers and standard errors for") == 2, proc.stdout


def test_a_model_name_inspect_takes_for_a_reasoning_model_is_labelled(site, data_dir, tmp_path):
    """inspect's OpenAI provider drops temperature for names it can't place (it takes them for reasoning
    models): the run is not greedy, and the result says so."""
    with FakeOpenAIServer(keep_images=False) as server:
        run = inspect_eval(
            site,
            tmp_path,
            ["siuo_mcqa"],
            judge_env(data_dir, server),
            "--limit",
            "2",
            "--model",
            "openai/my-local-vlm",
            "-M",
            "responses_api=false",
        )
    assert run.proc.returncode == 0, run.output[-4000:]
    decoding = run.siuo("siuo_mcqa")["provenance"]["harness"]["model_decoding"]
    assert decoding["sent"] == {"temperature": "not sent"} and decoding["task"]["temperature"] == 0.0
    assert "not comparable with the protocol" in " ".join(run.output.split())  # the warning (inspect wraps its lines)
    proc = siuo("verify", run.log_dir)
    assert "decoded otherwise than the protocol" in proc.stdout, proc.stdout


def test_what_the_protocol_does_not_allow_stops_before_generation(site, data_dir, tmp_path):
    with FakeOpenAIServer(keep_images=False) as server:
        env = judge_env(data_dir, server)
        run = inspect_eval(site, tmp_path / "epochs", ["siuo_mcqa"], env, "--limit", "2", "--epochs", "2")
        assert run.proc.returncode == 1 and "one answer per item" in run.proc.stderr, run.output[-3000:]
        run = inspect_eval(site, tmp_path / "reducer", ["siuo_gen_vote3"], env, "--limit", "2", "--epochs", "3", "--epochs-reducer", "mean")
        assert run.proc.returncode == 1 and "SIUO vote" in run.proc.stderr, run.output[-3000:]
        model_calls = [r for r in server.requests if r.get("model") == MODEL.split("/", 1)[1]]
    assert model_calls == []


def test_no_score_generates_without_a_judge(site, data_dir, tmp_path):
    """--no-score (as lmms-eval's --predict_only): no judge needed, none called, no SIUO result written."""
    with FakeOpenAIServer(keep_images=False) as model:
        env = {"SIUO_DATA_DIR": str(data_dir), "OPENAI_BASE_URL": model.url, "OPENAI_API_KEY": "model-key"}
        run = inspect_eval(site, tmp_path, ["siuo_gen"], env, "--limit", "2", "--no-score")
        calls = list(model.requests)
    assert run.proc.returncode == 0, run.output[-3000:]
    assert len(calls) == 2 and all(r.get("model") == MODEL.split("/", 1)[1] for r in calls)  # the model only
    assert not run.siuo_file("siuo_gen").exists() and log_header(run.log("siuo_gen")).status == "success"
