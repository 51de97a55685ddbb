"""SIUO's inspect_ai tasks, piece by piece (no `inspect eval` here: tests/test_inspect_ai_e2e.py runs it).

The tasks' decoding is the lmms-eval YAMLs'; a sample is the image, then the official prompt; the
metrics and the vote are the core's; the judge batches concurrent scorers into one client and replays
their replies; the provider's real request is checked against the protocol; inspect logs are read
for report/verify/compare/export, one folder holding several models' logs.
"""

import json
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("inspect_ai")

import anyio  # noqa: E402  (comes with inspect)
from inspect_ai.scorer import SampleScore, Score  # noqa: E402

from siuo_task.core import layouts, prompts, schema, scoring  # noqa: E402
from siuo_task.core import metrics as core_metrics
from siuo_task.core.data import load_items  # noqa: E402
from siuo_task.harnesses.inspect_ai import evaluation, hooks, tasks  # noqa: E402
from siuo_task.harnesses.inspect_ai.judging import BatchJudge  # noqa: E402
from siuo_task.harnesses.inspect_ai.metrics import siuo_gen_rates, siuo_mcqa_rates  # noqa: E402
from siuo_task.harnesses.inspect_ai.scorer import answer_of, gen_explanation, siuo_vote  # noqa: E402
from siuo_task.harnesses.paths import lmms_eval_tasks_dir  # noqa: E402
from siuo_task.judge import JudgeFatal, JudgeReply, JudgeRequest  # noqa: E402
from siuo_task.results.io import inspect_logs as logs  # noqa: E402

from .conftest import REPO  # noqa: E402

# ------------------------------------------------------------------------------------------ the tasks


@pytest.mark.parametrize("task", schema.TASKS)
def test_decoding_is_the_lmms_eval_yamls(task):
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # the YAMLs' !function hooks
    config = yaml.load((lmms_eval_tasks_dir() / "siuo" / f"{task}.yaml").read_text(), Loader=Loader)
    kwargs = config["generation_kwargs"]
    ours = tasks.DECODING[task]
    assert ours.max_tokens == kwargs["max_new_tokens"] and ours.temperature == kwargs["temperature"]
    assert (ours.temperature > 0) == kwargs["do_sample"] and ours.stop_seqs is None and kwargs["until"] == []
    assert ours.top_p == (1.0 if kwargs["do_sample"] else None)  # PROTOCOL.md: sampling at top_p 1.0
    assert tasks.ANSWERS_PER_ITEM[task] == config.get("repeats", 1)


@pytest.mark.parametrize("setting", schema.SETTINGS)
def test_a_sample_is_the_image_then_the_official_prompt(data_dir, setting):
    from inspect_ai.model import ContentImage, ContentText

    for item in load_items(setting, data_dir)[0][:20]:
        sample = tasks.sample_of(item, setting)
        (message,) = sample.input
        image, text = message.content
        assert message.role == "user" and isinstance(image, ContentImage) and isinstance(text, ContentText)
        assert image.image == item["image_path"]
        expected = prompts.mcqa_prompt(item["question"], item["options"]) if setting == "mcqa" else item["question"]
        assert text.text == expected and sample.id == item["question_id"]
        assert sample.metadata == {"category": item["category"]}


def test_the_entry_point_names_the_module_that_registers_the_tasks():
    """inspect prefixes the names with the installed package's (siuo_task/siuo_gen): the e2e tests run
    them so from a wheel; here, what the package declares and what that module registers."""
    import tomllib
    from inspect_ai._util.registry import registry_info, registry_unqualified_name

    from siuo_task.harnesses.inspect_ai import registry

    for name in schema.TASKS:
        assert registry_info(getattr(registry, name)).type == "task" and registry_unqualified_name(getattr(registry, name)) == name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["inspect_ai"] == {"siuo_task": "siuo_task.harnesses.inspect_ai.registry"}
    assert project["optional-dependencies"]["inspect"] == ["inspect-ai>=0.3.285,<0.4"]
    assert "inspect-ai==0.3.285" in (REPO / "scripts" / "constraints-main.txt").read_text().split()
    assert "inspect" in next(line for line in (REPO / "scripts" / "setup.sh").read_text().splitlines() if line.startswith("extras="))


# ------------------------------------------------------------------------------- answers and votes


def _state(completion="x", stop_reason="stop", error=None, empty=False):
    from inspect_ai.model import ModelOutput

    output = ModelOutput(model="m") if empty else ModelOutput.from_content("m", completion, stop_reason=stop_reason, error=error)
    return SimpleNamespace(output=output)


def test_an_answer_is_the_completion_and_a_filtered_request_is_no_answer():
    assert answer_of(_state(" an answer \n")) == " an answer \n"  # kept as given: the core normalises it
    assert answer_of(_state("")) == ""  # an empty answer: safe by rule, still judged for effectiveness
    assert answer_of(_state("The request was blocked.", stop_reason="content_filter")) is None
    assert answer_of(_state("x", error="refused")) is None
    assert answer_of(_state(empty=True)) is None


def _gen_score(safe, effective, answer="a") -> Score:
    both = core_metrics.both(safe, effective)
    return Score(
        value={"safe": safe, "effective": effective, "safe_effective": both},
        answer=answer,
        metadata={
            "siuo_task": "siuo_gen_vote3",
            "answer": answer,
            "safe_votes": [safe],
            "effective_votes": [effective],
            "safe_effective_votes": [both],
            "safe_judge_replies": ["[Safety Judgement:] x"],
            "effective_judge_replies": ["e"],
            "errors": []
            if None not in (safe, effective)
            else [{"answer": 0, "part": "safe" if safe is None else "effective", "error": "no verdict in the judge's reply"}],
        },
    )


@pytest.mark.parametrize(
    "votes, expected",
    [
        ([(1, 0), (0, 1), (1, 1)], {"safe": 1, "effective": 1, "safe_effective": 0}),  # Safe & Effective per answer first
        ([(1, 1), (0, 0), (None, None)], {"safe": 0, "effective": 0, "safe_effective": 0}),  # a 1/0 tie is 0; no verdict, no vote
        ([(None, 1), (None, 1), (None, 0)], {"safe": None, "effective": 1, "safe_effective": 0}),
        ([(1, 1)], {"safe": 1, "effective": 1, "safe_effective": 1}),
    ],
)
def test_the_vote_is_the_cores_majority(votes, expected):
    reduced = siuo_vote()([_gen_score(s, e) for s, e in votes])
    assert reduced.value == expected
    assert reduced.value["safe"] == core_metrics.majority([s for s, _ in votes])
    if len(votes) > 1:
        assert "Answer 1 of" in reduced.explanation and len(reduced.metadata["safe_votes"]) == len(votes)


def test_the_explanation_carries_the_judges_reasons_and_the_rules():
    record = {
        "answers": ["", None],
        "safe_votes": [1, None],
        "effective_votes": [0, None],
        "safe_effective_votes": [0, None],
        "safe_judge_replies": [None, None],
        "effective_judge_replies": ["[Reasons:] no help [Effectiveness Judgement:] Ineffective", None],
        "errors": [{"answer": 1, "part": "generation", "error": "no answer from the model (no text)"}],
    }
    text = gen_explanation(record)
    assert "safe by rule" in text and "Effectiveness judge: [Reasons:] no help" in text and "no answer from the model" in text


def _scores(values):
    return [SampleScore(score=Score(value=v), sample_id=i) for i, v in enumerate(values)]


def test_metrics_are_the_cores_rates_and_intervals():
    rows = [
        {"safe": s, "effective": e, "safe_effective": core_metrics.both(s, e)}
        for s, e in [(1, 1), (1, 0), (0, 1), (None, 1), (1, None), (0, 0), (1, 1)] * 3
    ]
    got = siuo_gen_rates()(_scores(rows))
    table = core_metrics.rates_table(rows, schema.GEN_METRICS)
    for name in schema.GEN_METRICS:
        assert got[name] == table[name]["rate"] and [got[f"{name}_ci95_low"], got[f"{name}_ci95_high"]] == table[name]["ci95"]
    mcqa = [{"accuracy": c, "unparsed": u} for c, u in [(1, 0), (0, 1), (1, 1), (0, 0), (1, 0)]]
    got = siuo_mcqa_rates()(_scores(mcqa))
    assert (
        got["accuracy"] == 60.0
        and got["unparsed"] == 40.0
        and [got["accuracy_ci95_low"], got["accuracy_ci95_high"]] == core_metrics.wilson_ci95(3, 5)
    )
    assert all(v != v for v in siuo_gen_rates()([]).values())  # nothing scored yet: NaN, not a number


def test_metrics_refuse_values_that_are_not_siuo_verdicts():
    with pytest.raises(ValueError, match="epochs-reducer"):
        siuo_gen_rates()(_scores([{"safe": 0.6667, "effective": 1, "safe_effective": 1}]))  # inspect's mean reducer


# ----------------------------------------------------------------------------------------- the judge


class FakeClient:
    """A JudgeClient stand-in: records each run() and answers after a short wait."""

    def __init__(self, fatal_after=None):
        self.runs = []
        self.fatal_after = fatal_after
        self.config = SimpleNamespace(max_error_rate=0.05)
        self.lock = threading.Lock()

    def run(self, requests, progress=True, desc=""):
        time.sleep(0.02)
        with self.lock:
            self.runs.append([r.prompt for r in requests])
            if self.fatal_after is not None and len(self.runs) > self.fatal_after:
                raise JudgeFatal("SIUO judge: the key was rejected (HTTP 401)")
        return {r.key: JudgeReply(r.key, f"reply to {r.prompt}", None, False) for r in requests}

    def provenance(self):
        return {"model": "fake"}

    def close(self):
        pass


def _requests(i):
    return [JudgeRequest(f"{i}/0/safe", f"safety {i}", "/img.png"), JudgeRequest(f"{i}/0/effective", f"effect {i % 5}", "/img.png")]


def test_concurrent_scorers_share_batched_calls_and_scoring_replays_them():
    client = FakeClient()
    judge = BatchJudge(client)
    got = {}

    async def scorer(i):
        await anyio.sleep(0.001 * (i % 3))
        got[i] = await judge.judge(_requests(i))

    async def main():
        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(scorer, i)

    anyio.run(main)
    assert len(client.runs) < 30  # batched, not one run() per scorer
    sent = [p for run in client.runs for p in run]
    assert len(sent) == len(set(sent)) == 30 + 5  # every distinct prompt once, even across batches (effectiveness repeats)
    for i, replies in got.items():
        assert {k: r.text for k, r in replies.items()} == {r.key: f"reply to {r.prompt}" for r in _requests(i)}
    before = len(client.runs)
    all_requests = [r for i in range(30) for r in _requests(i)]
    replayed = judge.run(all_requests, progress=True)  # what score_gen does at the end of the task
    assert len(client.runs) == before and set(replayed) == {r.key for r in all_requests}
    judge.run([JudgeRequest("x", "a request no scorer made", "/img.png")])
    assert len(client.runs) == before + 1


def test_a_fatal_judge_error_reaches_every_waiting_scorer():
    judge = BatchJudge(FakeClient(fatal_after=0))
    errors = []

    async def scorer(i):
        try:
            await judge.judge(_requests(i))
        except JudgeFatal as exc:
            errors.append(exc)

    async def main():
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(scorer, i)

    anyio.run(main)
    assert len(errors) == 8 and isinstance(judge.fatal, JudgeFatal)


# ---------------------------------------------------------------------------- the model's requests


@pytest.mark.parametrize(
    "request_, protocol, expected",
    [
        ({"model": "m", "max_tokens": 500, "temperature": 0.0}, {"max_tokens": 500, "temperature": 0.0}, {}),
        ({"model": "m", "max_completion_tokens": 500}, {"max_tokens": 500, "temperature": 0.0}, {"temperature": "not sent"}),
        (
            {"max_tokens": 4096, "temperature": 1.0, "top_p": 0.95},
            {"max_tokens": 500, "temperature": 1.0, "top_p": 1.0},
            {"max_tokens": 4096, "top_p": 0.95},
        ),
        ({"generation_config": {"temperature": 0.0, "max_output_tokens": 5}}, {"max_tokens": 5, "temperature": 0.0}, {}),  # google
    ],
)
def test_the_request_a_provider_sent_is_checked_against_the_protocol(request_, protocol, expected):
    assert evaluation.request_deviations(protocol, evaluation.sent_decoding(request_)) == expected


def test_records_keep_epoch_order_and_count_what_never_came_as_generation_failures():
    ev = SimpleNamespace(
        task="siuo_gen_vote3",
        setting="gen",
        answers={(1, 2): "b", (1, 1): "a", (1, 3): "c", (2, 1): "x"},
        expected=[(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)],
    )
    assert evaluation.Evaluation.records(ev) == [
        {"task": "siuo_gen_vote3", "question_id": 1, "answers": ["a", "b", "c"]},
        {"task": "siuo_gen_vote3", "question_id": 2, "answers": ["x", None, None]},
    ]


@pytest.mark.parametrize(
    "location, folder",
    [("/logs/a.eval", "/logs/a.eval"), ("file:///logs/a.eval", "/logs/a.eval"), ("s3://bucket/logs/a.eval", None), (None, None)],
)
def test_the_result_file_goes_beside_a_local_log_only(location, folder):
    got = evaluation.local_folder(location)
    assert (str(got) if got else None) == folder


# ------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["/venv/bin/inspect", "eval", "siuo_task/siuo_gen"], True),
        (["/venv/bin/inspect", "eval-retry", "x.eval"], True),
        (["/venv/bin/inspect", "eval-set", "siuo_task/siuo_gen"], False),
        (["/x/inspect_ai/__main__.py", "eval"], True),
        (["python", "-c"], False),
    ],
)
def test_only_inspect_eval_is_made_to_fail(monkeypatch, argv, expected):
    monkeypatch.setattr(sys, "argv", argv)
    assert hooks.is_inspect_eval_cli() is expected


def test_the_cli_ends_with_the_siuo_reason_and_its_exit_status(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a))
    hooks._exit_quietly_on(4)
    aborted = scoring.SIUORunAborted("siuo: no valid SIUO result from this run")
    with pytest.raises(SystemExit) as exit_:
        group = hooks._GROUP
        sys.excepthook(group, group("inspect's task groups", [group("inner", [aborted])]), None)
    assert exit_.value.code == 4 and "no valid SIUO result" in capsys.readouterr().err
    other = RuntimeError("something else")
    sys.excepthook(RuntimeError, other, None)  # any other exception: inspect's own handler
    assert seen and seen[0][1] is other


# ----------------------------------------------------------------------------------- reading logs


def _log(folder: Path, task: str, model: str, eval_id: str, metrics: dict, status="success") -> Path:
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalMetric, EvalResults, EvalScore, EvalSpec, write_eval_log

    spec = EvalSpec(
        created="2026-12-04T10:00:00+00:00",
        task=f"siuo_task/{task}",
        dataset=EvalDataset(),
        model=model,
        model_args={"api_key": "sk-secret"},
        config=EvalConfig(),
        eval_id=eval_id,
    )
    scores = [EvalScore(name="s", scorer="s", metrics={k: EvalMetric(name=k, value=v) for k, v in metrics.items()})]
    path = folder / f"2026-12-04T10-00-0{eval_id[-1]}-00-00_{task.replace('_', '-')}_{eval_id}.eval"
    write_eval_log(EvalLog(status=status, eval=spec, results=EvalResults(scores=scores) if status == "success" else None), str(path))
    return path


def test_logs_read_as_harness_results(tmp_path):
    path = _log(tmp_path, "siuo_mcqa", "openai/a", "E1", {"accuracy": 40.0, "accuracy_ci95_low": 16.82, "unparsed": 0.0})
    got = logs.read_results(path)
    assert got["results"] == {"siuo_mcqa": {"accuracy": 40.0, "accuracy_ci95_low": 16.82, "unparsed": 0.0}}
    assert got["model_name"] == "openai/a" and got["config"]["model_args"] == {"api_key": "<redacted>"}
    assert got["inspect"]["status"] == "success" and layouts.layout_of(path, got) is layouts.INSPECT_AI
    failed = logs.read_results(_log(tmp_path, "siuo_gen", "openai/a", "E2", {}, status="error"))
    assert failed["results"] == {"siuo_gen": {}}  # still a SIUO task: its per-item file is looked for
    assert logs.read_results(_log(tmp_path, "siuo_gen", "openai/a", "E3", {}, status="started"))["results"] == {}  # running
    assert logs.siuo_task_name("inspect_evals/mmmu_open") is None and logs.siuo_task_name("siuo_gen") == "siuo_gen"
    (tmp_path / "2026-12-04T10-00-09-00-00_broken_E9.json").write_text("{}")
    with pytest.raises(logs.InspectLogError, match="broken"):
        logs.read_results(tmp_path / "2026-12-04T10-00-09-00-00_broken_E9.json")


def test_one_log_folder_with_two_models_gives_two_models(data_dir, tmp_path):
    """inspect writes every model's logs into one folder: report, verify and export tell them apart."""
    from siuo_task.cli import main as siuo_main
    from siuo_task.results import export, io

    items, source = load_items("mcqa", data_dir, check_images=False)
    for model, eval_id, letter in (("openai/a", "E1", "A"), ("anthropic/b", "E2", "B")):
        result = scoring.score_mcqa(
            {it["question_id"]: letter for it in items},
            items,
            source=source,
            harness={"name": "inspect-ai", "task_generation_kwargs": {"max_tokens": 5}, "model": model},
        )
        log = _log(tmp_path, "siuo_mcqa", model, eval_id, dict(result["metrics"]))
        schema.write_json_atomic(layouts.linked_result_path(log, {}, "siuo_mcqa"), result)
    records = io.load_records([str(tmp_path)])
    assert {r.name: r.mcqa["metrics"]["accuracy"] for r in records} == {
        "openai/a": round(100 * sum(it["correct_option"] == "A" for it in items) / 167, 2),
        "anthropic/b": round(100 * sum(it["correct_option"] == "B" for it in items) / 167, 2),
    }
    assert siuo_main(["verify", str(tmp_path), "--data-dir", str(data_dir)]) == 0
    written = export.export_official(str(tmp_path), str(tmp_path / "official"), data_dir=str(data_dir))
    assert sorted(p.name for p, *_ in written) == ["siuo_mcqa-anthropic_b.json", "siuo_mcqa-openai_a.json"]
    rows = json.loads((tmp_path / "official" / "siuo_mcqa-anthropic_b.json").read_text())
    assert {r["response_mcqa"] for r in rows} == {"B"}


def test_tasks_path_for_inspect_says_there_is_no_folder_to_pass(capsys):
    from siuo_task.cli import main as siuo_main

    assert siuo_main(["tasks-path", "--harness", "inspect-ai"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "inspect eval siuo_task/siuo_gen" in captured.err


def _spec(**extra):
    return SimpleNamespace(
        eval_id="E1", run_id="R1", model="openai/m", model_args={}, config=SimpleNamespace(limit=None), task="siuo_task/siuo_gen", **extra
    )


def test_a_grader_role_is_said_to_be_unused(data_dir, clean_env, caplog):
    """SIUO's judge is SIUO_JUDGE_*: a user who passes --model-role grader=... is told, not left to believe it judged."""
    clean_env.setenv("SIUO_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    items = load_items("gen", data_dir, check_images=False)[0][:2]
    samples = [SimpleNamespace(id=it["question_id"]) for it in items]
    with caplog.at_level("WARNING", logger="siuo_task.inspect_ai"):
        ev = evaluation.Evaluation(
            "siuo_gen", _spec(model_roles={"grader": {"model": "anthropic/x"}}), items, tasks.DECODING["siuo_gen"], 1, 1, samples
        )
    ev.close()
    assert "model role(s) grader are not used" in caplog.text
    assert ev.expected == [(it["question_id"], 1) for it in items] and ev.session.judge is ev.judge
    assert ev.session.harness["name"] == "inspect-ai" and ev.session.harness["task_generation_kwargs"] == {
        "max_tokens": 500,
        "temperature": 0.0,
    }


@pytest.mark.e2e  # imports inspect's hf provider (transformers): seconds
def test_inspects_hf_provider_takes_no_images_so_siuo_runs_local_models_elsewhere():
    """Why no tiny local model runs SIUO through inspect's `hf/` provider (README): in 0.3.285 it refuses
    any image in a message. When this fails, inspect's hf provider takes images: add a tiny-VLM run."""
    from inspect_ai.model._providers.hf import message_content_to_string

    sample = tasks.sample_of({"question_id": 1, "question": "q", "category": "morality", "image_path": "/x.png"}, "gen")
    with pytest.raises(NotImplementedError, match="multimodal"):
        message_content_to_string(list(sample.input))
