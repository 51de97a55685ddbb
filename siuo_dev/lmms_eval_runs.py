"""Running the real lmms-eval CLI on local checkpoints, and checking what it wrote.

Shared by ``tests/test_local_models.py`` (CPU) and ``scripts/gpu_check.py`` (CUDA). The CLI exits 0
even when a task fails, so the checks read the result files, never the exit code: items complete
and not doubled, numbers equal to what the per-item records give, the harness's results.json in
agreement, and one judge call per needed call (counted on the fake judge server).
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

from siuo_dev.fake_judge_server import (
    EFFECTIVENESS_PREFIX,
    SAFETY_PREFIX,
    FakeOpenAIServer,
    prompt_text,
)
from siuo_dev.reference_generate import QwenVLReference, load_image, siuo_prompt
from siuo_dev.testing import PYTHON, harness_env
from siuo_task.core.data import load_items
from siuo_task.core.layouts import linked_result_path
from siuo_task.judge import PREFLIGHT_PROMPT

QWEN_TINY_PIXELS = {"max_pixels": 12544, "min_pixels": 3136}  # 56x56..112x112: a few visual tokens per image
QWEN_CLASS_PIXELS = {"max_pixels": 1605632, "min_pixels": 256 * 28 * 28}  # lmms-eval's qwen2_5_vl class defaults
RESPONSE_START = "<Generated response:> "
RESPONSE_ENDS = ("\n\nLet's think step by step", "\n\nEvaluation Criteria:")  # safety, effectiveness prompt


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def data_parallel_launcher(num_processes: int) -> list:
    """``accelerate launch`` with real CPU data parallelism (run it with ACCELERATE_USE_CPU=1 in the env).

    ``accelerate launch --cpu --num_processes 2`` silently runs ONE process (its simple launcher);
    ``--multi_gpu`` starts the workers with torch.distributed, and ACCELERATE_USE_CPU=1 makes each
    worker's ``Accelerator()`` a MULTI_CPU/gloo group.
    """
    return [
        PYTHON,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "lmms_eval",
    ]


def openai_model_args(url: str, *, model: str = "fake-lvlm", num_concurrent: int = 4, retry_backoff_s: float | None = None) -> str:
    """``--model_args`` of lmms-eval's ``openai`` model answering from the fake server at ``url`` (one
    retry; ``retry_backoff_s`` None: lmms-eval's own back-off)."""
    args = f"model_version={model},base_url={url},max_retries=1"
    if retry_backoff_s is not None:
        args += f",retry_backoff_s={retry_backoff_s}"
    return f"{args},num_concurrent={num_concurrent}"


def model_run_args(
    model: str, model_args: str, tasks: str, limit: int | None, *, device: str = "cpu", batch_size: int = 1, max_new_tokens: int | None = 8
) -> list:
    """lmms-eval CLI arguments for a local model run; ``limit`` or ``max_new_tokens`` None: not passed
    (all items; the tasks' own token counts)."""
    args = ["--model", model, "--model_args", model_args, "--device", device, "--batch_size", str(batch_size), "--tasks", tasks]
    if limit is not None:
        args += ["--limit", str(limit)]
    if max_new_tokens is not None:
        args += ["--gen_kwargs", f"max_new_tokens={max_new_tokens}"]
    return args


class Run:
    """One lmms-eval CLI run: its output folder, log, and the fake judge's requests."""

    def __init__(self, out: Path, log: str, judge_requests: list, seconds: float = 0.0):
        self.out = out
        self.log = log
        self.judge_requests = judge_requests
        self.seconds = seconds

    def results(self) -> dict:
        files = sorted(self.out.glob("*/*_results.json"))
        assert files, f"lmms-eval wrote no results file under {self.out}; log tail:\n{self.log[-4000:]}"
        return json.loads(files[-1].read_text())

    def backend(self) -> str:
        """The model class lmms-eval used, e.g. ``lmms_eval.models.chat.qwen2_5_vl.Qwen2_5_VL (chat)``."""
        return self.results()["config"]["model_backend"]

    def siuo_files(self, task: str) -> list:
        """The task's SIUO per-item files, each where the run's results file names it."""
        found = []
        for results in sorted(self.out.glob("*/*_results.json")):
            path = linked_result_path(results, json.loads(results.read_text()), task)
            if path is not None and path.is_file():
                found.append(path)
        return found

    def has_siuo(self, task: str) -> bool:
        return bool(self.siuo_files(task))

    def siuo(self, task: str) -> dict:
        files = self.siuo_files(task)
        assert len(files) == 1, (
            f"{task}: expected one per-item file beside the results under {self.out}, got {files}; log tail:\n{self.log[-4000:]}"
        )
        return json.loads(files[0].read_text())

    def samples(self, task: str) -> list:
        files = sorted(self.out.glob(f"*/*_samples_{task}.jsonl"))
        assert files, f"{task}: no samples file under {self.out}"
        return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]

    def answers(self) -> dict:
        """{(setting, question_id): answer} from the per-item files."""
        found = {}
        if self.has_siuo("siuo_mcqa"):
            found.update({("mcqa", i["question_id"]): i["response"] for i in self.siuo("siuo_mcqa")["items"]})
        if self.has_siuo("siuo_gen"):
            found.update({("gen", i["question_id"]): i["answers"][0] for i in self.siuo("siuo_gen")["items"]})
        return found


def run_lmms_eval(
    out: Path, data_dir, args: list, *, launcher: list | None = None, extra_env: dict | None = None, timeout: int = 600
) -> Run:
    """Run the lmms-eval CLI with ``args`` against a fresh fake judge; every judge call reaches it (no cache)."""
    with FakeOpenAIServer() as judge:
        env = harness_env(
            {
                "SIUO_DATA_DIR": str(data_dir),
                "SIUO_JUDGE_BASE_URL": judge.url,
                "SIUO_JUDGE_API_KEY": "sk-fake-judge",
                "SIUO_JUDGE_MODEL": "fake-judge",
                "SIUO_JUDGE_CACHE": "off",
                **(extra_env or {}),
            }
        )
        cmd = [*(launcher or [PYTHON, "-m", "lmms_eval"]), *args, "--output_path", str(out), "--log_samples"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        seconds = time.perf_counter() - start
        # the judge preflight's check call (one per process) is not a judging call
        requests = [b for b in judge.requests if not prompt_text(b).startswith(PREFLIGHT_PROMPT)]
    return Run(Path(out), proc.stdout + proc.stderr, requests, seconds)


# -------------------------------------------------------------------------------------------- checks


def expected_ids(setting: str, data_dir, limit: int) -> list:
    return [item["question_id"] for item in load_items(setting, data_dir, check_images=False)[0][:limit]]


def check_items(result: dict, setting: str, data_dir, limit: int) -> list:
    ids = [item["question_id"] for item in result["items"]]
    assert len(ids) == len(set(ids)), f"{result['task']}: an item is doubled: {ids}"
    assert sorted(ids) == sorted(expected_ids(setting, data_dir, limit)), f"{result['task']}: items lost or foreign: {ids}"
    assert result["counts"]["n"] == limit
    return ids


def expected_stderr(result: dict, metric: str) -> tuple:
    """``(n, p, clt)`` from the per-item records by plain arithmetic: the items with a verdict for
    ``metric``, the share of 1s among them, and lmms-eval's Stderr_CLT of their 0/100 scores, which is
    the binomial standard error 100 sqrt(p(1-p)/n) times sqrt(n/(n-1)) (``None`` below two items)."""
    field = {"accuracy": "correct"}.get(metric, metric)
    values = [int(bool(item[field])) for item in result["items"] if item.get(field) is not None]
    n = len(values)
    p = sum(values) / n if n else None
    clt = 100 * math.sqrt(p * (1 - p) / n) * math.sqrt(n / (n - 1)) if n > 1 else None
    return n, p, clt


def check_harness_stderr(row: dict, result: dict, filter_key: str = "none") -> None:
    """The harness row's standard errors of every SIUO metric are numbers, equal to the binomial one
    times sqrt(n/(n-1)) (lmms-eval's CLT estimate); the clustered one equals it (one image per item);
    the bootstrap column stays "N/A" (lmms-eval gives it only to its own aggregation functions).
    Below two items lmms-eval has no estimate and says "N/A"."""
    for metric in result["metrics"]:
        n, p, clt = expected_stderr(result, metric)
        if clt is None:  # fewer than two items with a verdict: lmms-eval says N/A
            assert row.get(f"{metric}_stderr_clt,{filter_key}") == "N/A", (metric, n, row)
            continue
        got = row.get(f"{metric}_stderr_clt,{filter_key}")
        assert isinstance(got, float) and got == pytest_approx(clt), (
            f"{result['task']} {metric}: Stderr_CLT {got!r}, expected {clt} (n={n}, p={p})"
        )
        assert row.get(f"{metric}_stderr_clustered,{filter_key}") == pytest_approx(clt), (metric, row)
        assert row.get(f"{metric}_stderr,{filter_key}") == "N/A", (metric, row)


def pytest_approx(value):
    import pytest

    return pytest.approx(value, rel=1e-9, abs=1e-9)


def check_harness_agrees(run: Run, task: str, result: dict, limit: int) -> None:
    """The harness's results.json reports the numbers of the per-item file, over ``limit`` items, and
    their standard errors."""
    harness = run.results()
    assert harness["n-samples"][task]["effective"] == limit
    for name, value in result["metrics"].items():
        assert harness["results"][task][f"{name},none"] == value, f"{task} {name}: harness {harness['results'][task]}, SIUO {value}"
    check_harness_stderr(harness["results"][task], result)
    samples = run.samples(task)
    assert len(samples) == limit and len({s["doc_id"] for s in samples}) == limit, f"{task}: sample log not one row per item"


def check_mcqa(run: Run, data_dir, limit: int) -> dict:
    result = run.siuo("siuo_mcqa")
    check_items(result, "mcqa", data_dir, limit)
    items = result["items"]
    assert all(item["response"].strip() for item in items), "the random models answer visible text, never nothing"
    assert result["counts"]["failed"] == 0
    # recomputed from the per-item records with plain arithmetic: percentage, two decimals
    assert result["metrics"]["accuracy"] == round(100 * sum(item["correct"] for item in items) / limit, 2)
    assert result["metrics"]["unparsed"] == round(100 * sum(item["unparsed"] for item in items) / limit, 2)
    assert result["counts"]["unparsed"] == sum(item["unparsed"] for item in items)
    check_harness_agrees(run, "siuo_mcqa", result, limit)
    by_sample = {s["accuracy"]["question_id"]: s["accuracy"]["response"] for s in run.samples("siuo_mcqa")}
    assert by_sample == {item["question_id"]: item["response"] for item in items}
    return result


def graded_answer(body: dict) -> str:
    text = prompt_text(body)
    start = text.index(RESPONSE_START) + len(RESPONSE_START)
    end = min(i for i in (text.find(marker, start) for marker in RESPONSE_ENDS) if i >= 0)
    return text[start:end]


def check_gen(run: Run, data_dir, limit: int) -> dict:
    result = run.siuo("siuo_gen")
    check_items(result, "gen", data_dir, limit)
    items = result["items"]
    answers = [answer for item in items for answer in item["answers"]]
    assert len(answers) == limit and all(a.strip() for a in answers), f"one visible answer per item expected: {answers}"
    assert result["judge_errors"] == {"safe": 0, "effective": 0} and result["counts"]["generation_failures"] == 0
    for name in ("safe", "effective", "safe_effective"):
        assert result["metrics"][name] == round(100 * sum(item[name] for item in items) / limit, 2), name

    # The judge ran once, on rank 0, after the gather: one safety and one effectiveness call per
    # answer, each grading exactly that answer - not once per rank, and nothing else was sent.
    safety = [b for b in run.judge_requests if prompt_text(b).lstrip().startswith(SAFETY_PREFIX)]
    effectiveness = [b for b in run.judge_requests if prompt_text(b).lstrip().startswith(EFFECTIVENESS_PREFIX)]
    assert len(safety) == len(effectiveness) == len(answers), (
        f"judge calls: {len(safety)} safety, {len(effectiveness)} effectiveness for {len(answers)} answers"
    )
    assert len(run.judge_requests) == 2 * len(answers)
    assert Counter(graded_answer(b).strip() for b in safety) == Counter(a.strip() for a in answers)
    assert Counter(graded_answer(b).strip() for b in effectiveness) == Counter(a.strip() for a in answers)
    assert result["provenance"]["judge"]["usage"]["calls"] == len(run.judge_requests)
    check_harness_agrees(run, "siuo_gen", result, limit)
    return result


def reference_mismatches(
    model_dir,
    data_dir,
    harness_answers: dict,
    *,
    dtype: str,
    device: str = "cpu",
    max_new_tokens: int = 8,
    simple_path: bool = False,
    pixels: dict | None = None,
) -> dict:
    """Items whose harness answer differs from a bare, unbatched transformers generate of the same item.

    ``simple_path`` mirrors lmms-eval's simple Qwen classes: a system prompt, and the image sent
    as a JPEG data URL with the class's pixel bounds.
    """
    pixels = QWEN_TINY_PIXELS if pixels is None else pixels
    ref = QwenVLReference(model_dir, dtype=dtype, device=device, **pixels)
    items = {(s, i["question_id"]): i for s in ("mcqa", "gen") for i in load_items(s, data_dir)[0]}
    mismatches = {}
    for key, answer in harness_answers.items():
        item = items[key]
        image = load_image(item["image_path"])
        kwargs = {}
        if simple_path:
            from lmms_eval.models.model_utils.media_encoder import (
                encode_image_to_data_url,
            )

            image = encode_image_to_data_url(image, image_format="JPEG", mime_type="image/jpeg", convert_rgb=True, quality=85)
            kwargs = {"system_prompt": "You are a helpful assistant.", "image_kwargs": dict(pixels)}
        expected = ref.generate([image], [siuo_prompt(key[0], item)], max_new_tokens=max_new_tokens, **kwargs)[0].strip()
        if expected != answer:
            mismatches[key] = {"harness": answer, "transformers": expected}
    return mismatches
