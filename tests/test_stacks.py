"""siuo-task in the lmms-eval environments users already have (``tests/stacks.py`` builds them).

For each stack - (A) lmms-eval 0.6.1 + transformers 4.57.x + huggingface_hub 0.x, (B) lmms-eval
0.7.3 + transformers 5.24.0, (C) lmms-eval 0.7.3 + transformers 5.25.0 (with the ``kernels`` it
requires) - the install leaves lmms-eval, transformers and torch exactly as they were;
``lmms-eval --tasks siuo`` (no --include_path: found by the entry point) through the ``openai``
class on fixed answers gives the numbers this environment's ``siuo score`` gives for those answers,
with numeric standard errors in lmms-eval's results; and a tiny random-weight qwen2_vl runs
siuo_mcqa + siuo_gen. On 0.6.1, the listing commands the README gives list SIUO.

The harness runs use ``python -P -m lmms_eval``, so the stack imports the installed wheel, not this
checkout; they run in each stack's build thread, overlapping the other stack's build.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from siuo_dev.fake_judge_server import EFFECTIVENESS_PREFIX, MCQA_MARKER, SAFETY_PREFIX, FakeOpenAIServer, default_responder, prompt_text
from siuo_dev.lmms_eval_runs import check_gen, check_harness_stderr, check_mcqa, model_run_args, openai_model_args, run_lmms_eval
from siuo_dev.testing import score_gen_args
from siuo_task.cli import main as siuo_main
from siuo_task.core.data import load_items
from siuo_task.core.layouts import linked_result_path
from siuo_task.core.mcqa import CHOICES

from .conftest import REPO, harness_env
from .stacks import ISOLATED, STACKS, build_stacks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # the first test also waits for the stacks to build
LIMIT = 6
LISTED = ("A",)  # lmms-eval 0.6.1: the listing commands (0.7.3's are checked in the main environment, test_listing.py)
TINY_LIMIT = 2
GEN_ANSWERS = ("SAFE and helpful", "UNSAFE advice", "SAFE INEFFECTIVE refusal", "PARTIAL help")


@pytest.fixture(scope="session")
def stacks(tmp_path_factory, data_dir):
    """The stacks, and in each stack's own thread (so the two overlap) the harness runs the tests check."""

    def prepare(stack):
        _run_openai_class(stack, data_dir)
        _run_tiny_qwen2_vl(stack, data_dir)
        if stack.name in LISTED:
            _run_listings(stack)

    start = time.perf_counter()
    built = build_stacks(tmp_path_factory.mktemp("stacks"), then=prepare)
    print(
        f"\nstacks built in {time.perf_counter() - start:.0f} s: "
        + "; ".join(f"{s.name} { ({k: round(v) for k, v in s.seconds.items()}) }" for s in built.values())
    )
    return built


def fixed_answers(data_dir):
    """The fake model's answer to every item: each MCQA and judge branch, chosen by question_id."""
    mcqa = {}
    for item in load_items("mcqa", data_dir, check_images=False)[0]:
        kind = item["question_id"] % 3
        wrong = next(c for c in CHOICES if c != item["correct_option"])
        mcqa[item["question"]] = (item["question_id"], [f"({item['correct_option']})", f"{wrong}.", "I cannot answer that."][kind])
    gen = {
        item["question"]: (item["question_id"], GEN_ANSWERS[item["question_id"] % 4])
        for item in load_items("gen", data_dir, check_images=False)[0]
    }
    return mcqa, gen


def responder(data_dir):
    mcqa, gen = fixed_answers(data_dir)

    def respond(body):
        text = prompt_text(body)
        if text.lstrip().startswith((SAFETY_PREFIX, EFFECTIVENESS_PREFIX)):
            return default_responder(body)
        if text.startswith(MCQA_MARKER):
            return mcqa[text.split("Qusetion: ", 1)[1].split("\nOption:\n", 1)[0]][1]
        return gen[text.strip()][1]

    return respond


def siuo_file(out: Path, task: str) -> dict:
    """The per-item file the run wrote for ``task``, found by its link to the harness's results file."""
    runs = sorted(out.glob("*/*_results.json"))
    assert len(runs) == 1, f"{task}: expected one harness results file under {out}, got {runs}"
    path = linked_result_path(runs[0], json.loads(runs[0].read_text()), task)
    assert path is not None and path.is_file(), f"{task}: no per-item file {path} beside {runs[0]}"
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(STACKS))
def test_install_leaves_the_harness_as_it_was(stacks, name):
    stack = stacks[name]
    assert stack.changed() == {}, f"{stack.label}: installing siuo-task changed {stack.changed()}"
    assert "siuo-task" in stack.after and "siuo-task" not in stack.before
    requirements = STACKS[name][1]
    pinned = {r.split("==")[0]: r.split("==")[1] for r in requirements if "==" in r}
    for dist, version in pinned.items():
        key = dist.replace("_", "-")
        assert stack.after[key].endswith(f"=={version}"), (key, stack.after[key])
    if name == "A":
        assert stack.after["huggingface-hub"].split("==")[1].startswith("0.")
    if name == "C":  # transformers 5.25.0 requires kernels; pip brought it with the user's install
        assert "kernels" in stack.before and "kernels" in stack.after
    where = subprocess.run(
        [stack.siuo, "tasks-path"], capture_output=True, text=True, check=True, timeout=120, env={**harness_env(), **ISOLATED}
    ).stdout.strip()
    assert where.startswith(str(stack.root)) and "site-packages" in where, where  # the wheel, not this checkout
    print(f"\n{stack.label}: " + ", ".join(stack.after[k] for k in ("lmms-eval", "transformers", "torch")))


def _run_openai_class(stack, data_dir) -> None:
    """``lmms-eval --model openai --tasks siuo`` in the stack, against a fake server playing model and judge."""
    out = stack.root / "runs" / "openai"
    start = time.perf_counter()
    with FakeOpenAIServer(responder=responder(data_dir)) as server:
        env = harness_env(
            {
                "SIUO_DATA_DIR": str(data_dir),
                "OPENAI_API_KEY": "dummy",
                "SIUO_JUDGE_BASE_URL": server.url,
                "SIUO_JUDGE_API_KEY": "sk-fake-judge",
                "SIUO_JUDGE_MODEL": "fake-judge",
                "SIUO_JUDGE_CACHE": "off",
                **ISOLATED,
            }
        )
        proc = subprocess.run(
            [
                *stack.lmms_eval,
                "--model",
                "openai",
                "--model_args",
                openai_model_args(server.url, retry_backoff_s=0.05),
                "--tasks",
                "siuo",
                "--limit",
                str(LIMIT),
                "--output_path",
                str(out),
                "--log_samples",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    stack.seconds["openai run"] = time.perf_counter() - start
    stack.prepared["openai"] = (out, proc.stdout + proc.stderr)


@pytest.mark.parametrize("name", sorted(STACKS))
def test_openai_class_gives_this_environments_numbers(stacks, name, data_dir, tmp_path, clean_env):
    stack = stacks[name]
    out, log = stack.prepared["openai"]
    assert list(out.glob("*/*_results.json")), f"{stack.label}: no results; log tail:\n{log[-4000:]}"
    harness = json.loads(sorted(out.glob("*/*_results.json"))[-1].read_text())
    mcqa_run, gen_run = siuo_file(out, "siuo_mcqa"), siuo_file(out, "siuo_gen")
    # the same fixed answers scored in this (the main) environment, by the same deterministic judge
    with FakeOpenAIServer() as server:
        mcqa_answers, gen_answers = fixed_answers(data_dir)
        ids_mcqa = [r["question_id"] for r in mcqa_run["items"]]
        ids_gen = [r["question_id"] for r in gen_run["items"]]
        assert len(ids_mcqa) == len(ids_gen) == LIMIT
        by_id_mcqa = {qid: answer for qid, answer in mcqa_answers.values()}
        by_id_gen = {qid: answer for qid, answer in gen_answers.values()}
        (tmp_path / "mcqa.json").write_text(json.dumps([{"question_id": q, "response_mcqa": by_id_mcqa[q]} for q in ids_mcqa]))
        (tmp_path / "gen.json").write_text(json.dumps([{"question_id": q, "responses": [by_id_gen[q]]} for q in ids_gen]))
        assert (
            siuo_main(
                ["score", "mcqa", str(tmp_path / "mcqa.json"), "--out", str(tmp_path / "mcqa_main.json"), "--data-dir", str(data_dir)]
            )
            == 0
        )
        assert (
            siuo_main(
                score_gen_args(
                    tmp_path / "gen.json",
                    tmp_path / "gen_main.json",
                    data_dir,
                    server.url,
                    judge_model="fake-judge",
                    cache="off",
                    quiet=True,
                )
            )
            == 0
        )
    mcqa_main = json.loads((tmp_path / "mcqa_main.json").read_text())
    gen_main = json.loads((tmp_path / "gen_main.json").read_text())
    for run, main, task in ((mcqa_run, mcqa_main, "siuo_mcqa"), (gen_run, gen_main, "siuo_gen")):
        assert run["metrics"] == main["metrics"], f"{stack.label} {task}: {run['metrics']} != {main['metrics']}"
        assert run["by_category"] == main["by_category"] and run["counts"] == main["counts"], task
        for metric, value in main["metrics"].items():
            assert harness["results"][task][f"{metric},none"] == value, (task, metric)
        check_harness_stderr(harness["results"][task], run)  # numeric standard errors on this lmms-eval too
    assert [r["response"] for r in mcqa_run["items"]] == [by_id_mcqa[q] for q in ids_mcqa]
    assert 0 < mcqa_main["metrics"]["accuracy"] < 100 and 0 < gen_main["metrics"]["safe"] < 100  # the answers discriminate


def _run_tiny_qwen2_vl(stack, data_dir) -> None:
    """The tiny checkpoint, written by the stack's own transformers (a 5.x save need not load in 4.x), then
    siuo_mcqa + siuo_gen on it through lmms-eval's qwen2_vl class."""
    dst = stack.root / "tiny_qwen2_vl"
    code = f"from siuo_dev.tiny_models import build_tiny_qwen2_vl; build_tiny_qwen2_vl({str(dst)!r})"
    start = time.perf_counter()
    proc = subprocess.run([stack.python, "-c", code], cwd=REPO, env=harness_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        stack.prepared["qwen2_vl"] = f"tiny qwen2_vl build failed:\n{proc.stderr[-3000:]}"
        return
    stack.prepared["qwen2_vl"] = run_lmms_eval(
        stack.root / "runs" / "qwen2_vl",
        data_dir,
        model_run_args("qwen2_vl", f"pretrained={dst},device_map=cpu,max_pixels=12544,min_pixels=3136", "siuo_mcqa,siuo_gen", TINY_LIMIT),
        launcher=stack.lmms_eval,
        extra_env=ISOLATED,
    )
    stack.seconds["tiny qwen2_vl"] = time.perf_counter() - start


@pytest.mark.parametrize("name", sorted(STACKS))
def test_tiny_local_qwen2_vl(stacks, name, data_dir):
    stack = stacks[name]
    run = stack.prepared["qwen2_vl"]
    assert not isinstance(run, str), f"{stack.label}: {run}"
    check_mcqa(run, data_dir, TINY_LIMIT)
    check_gen(run, data_dir, TINY_LIMIT)


def _run_listings(stack) -> None:
    """The listing commands as a user of the stack types them (0.6.1 installs the ``lmms-eval`` script)."""
    script = str(Path(stack.python).with_name("lmms-eval"))
    commands = {
        "console script": [script, "--tasks", "list"],
        "module": [*stack.lmms_eval, "--tasks", "list"],
        "0.7 subcommand": [script, "tasks", "list"],
    }
    stack.prepared["listings"] = {
        name: subprocess.run(cmd, env={**harness_env(), **ISOLATED}, capture_output=True, text=True, timeout=300)
        for name, cmd in commands.items()
    }


@pytest.mark.parametrize("name", LISTED)
def test_listing_commands_on_lmms_eval_0_6(stacks, name):
    """``lmms-eval --tasks list`` (the README's and the doctor's command) lists SIUO on 0.6.1 too; the
    0.7 ``tasks`` subcommand does not exist there."""
    from .test_listing import SIUO_NAMES, listed

    procs = stacks[name].prepared["listings"]
    for command in ("console script", "module"):
        proc = procs[command]
        assert proc.returncode == 0 and listed(proc.stdout + proc.stderr) == SIUO_NAMES, (command, proc.stderr[-2000:])
    assert procs["0.7 subcommand"].returncode != 0 and "unrecognized arguments: tasks list" in procs["0.7 subcommand"].stderr
