"""SIUO is a good neighbour in a multi-task lmms-eval run (issue: SIUO beside other multimodal tasks)."""

import json
import subprocess
import textwrap

import pytest

from siuo_dev.fake_judge_server import FakeOpenAIServer, prompt_text

from .conftest import PYTHON, harness_env
from .test_lmms_eval_e2e import make_responder, model_args, run_lmms_eval, siuo_file

pytestmark = pytest.mark.e2e

INDEX_SCRIPT = """
import json, sys
from lmms_eval.tasks import TaskManager
from siuo_task.harnesses.lmms_eval.plugin import install_task_path
assert install_task_path()
wrapped = TaskManager.initialize_tasks
TaskManager.initialize_tasks = wrapped.__wrapped__  # lmms-eval as it ships
plain = TaskManager().task_index
TaskManager.initialize_tasks = wrapped
with_siuo = TaskManager().task_index
json.dump({"plain": {k: str(v) for k, v in plain.items()}, "with_siuo": {k: str(v) for k, v in with_siuo.items()}}, sys.stdout)
"""


def test_builtin_task_index_is_unchanged():
    proc = subprocess.run([PYTHON, "-c", INDEX_SCRIPT], capture_output=True, text=True, env=harness_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    index = json.loads(proc.stdout.strip().splitlines()[-1])
    plain, with_siuo = index["plain"], index["with_siuo"]
    assert len(plain) > 100  # lmms-eval's own tasks were indexed
    assert {k: with_siuo[k] for k in plain} == plain  # every built-in task, unchanged
    assert sorted(set(with_siuo) - set(plain)) == ["siuo", "siuo_gen", "siuo_gen_vote3", "siuo_mcqa"]


TOY_YAML = """
task: toy_colours
dataset_path: json
dataset_kwargs:
  data_files:
    test: toy.jsonl
test_split: test
output_type: generate_until
doc_to_visual: !function toy_utils.doc_to_visual
doc_to_text: !function toy_utils.doc_to_text
doc_to_target: answer
process_results: !function toy_utils.process_results
generation_kwargs:
  max_new_tokens: 4
  until: []
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
"""

TOY_UTILS = """
from PIL import Image


def doc_to_visual(doc):
    return [Image.new("RGB", (16, 16), doc["colour"])]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return "TOY: name the colour of this square in one word."


def process_results(doc, results):
    return {"accuracy": float(results[0].strip().lower() == doc["answer"])}
"""


def test_siuo_beside_another_image_task(data_dir, tmp_path):
    toy = tmp_path / "toy_task"
    toy.mkdir()
    (toy / "toy.yaml").write_text(TOY_YAML)
    (toy / "toy_utils.py").write_text(textwrap.dedent(TOY_UTILS))
    rows = [{"colour": c, "answer": c} for c in ("red", "blue", "green", "red")]
    (toy / "toy.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    siuo_responder = make_responder(data_dir)

    def respond(body):
        if prompt_text(body).startswith("TOY:"):
            return "red"  # right on 2 of 4
        return siuo_responder(body)

    with FakeOpenAIServer(responder=respond) as server:
        results, log = run_lmms_eval(
            [
                "--model",
                "openai",
                "--model_args",
                model_args(server.url),
                "--tasks",
                "siuo,toy_colours",
                "--limit",
                "4",
                "--include_path",
                str(toy),
            ],
            tmp_path / "out",
            {
                "SIUO_DATA_DIR": str(data_dir),
                "OPENAI_API_KEY": "dummy",
                "SIUO_JUDGE_BASE_URL": server.url,
                "SIUO_JUDGE_API_KEY": "x",
                "SIUO_JUDGE_CACHE": str(tmp_path / "cache"),
            },
        )
    assert results is not None, log[-3000:]
    table = results["results"]
    # both tasks in the one results file, each with its own numbers
    assert table["toy_colours"]["accuracy,none"] == 0.5
    assert table["siuo_mcqa"]["accuracy,none"] == siuo_file(tmp_path / "out", "siuo_mcqa")["metrics"]["accuracy"]
    assert table["siuo_gen"]["safe,none"] == siuo_file(tmp_path / "out", "siuo_gen")["metrics"]["safe"]
    # the SIUO group aggregates nothing, so it cannot swallow the other task's "accuracy"
    assert not any(key.startswith(("accuracy", "safe")) for key in table["siuo"])
    assert set(results["group_subtasks"]["siuo"]) == {"siuo_gen", "siuo_mcqa"}
