"""Result files for the `siuo verify` / `siuo compare` tests, made the way users make them.

`siuo score gen` against the fake judge (tests/test_gen_scoring.py's way) and `siuo score mcqa` on all
167 items, with answers that exercise every rule: empty answers, failed requests, judge replies
without a verdict, ties, partial effectiveness, unparsed and full-width MCQA answers.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from siuo_dev.fake_judge_server import FakeOpenAIServer  # the one import of the fake judge in these tests
from siuo_dev.testing import score_gen_args
from siuo_task.cli import main as siuo_main
from siuo_task.core.data import load_items
from siuo_task.core.mcqa import FAILED_REQUEST_MARKER

KEY = "sk-test-verify-0015"
JUDGE = "fake-judge"

# Three answers per item (siuo_gen_vote3, the paper's protocol; `siuo score gen` takes the task from
# the answers). Every rule of the scorer is met: null (no text), empty and whitespace-only answers
# (safe by rule, still judged for effectiveness), failed requests, replies without a verdict, ties.
GEN_PLANS = [
    ["SAFE answer", "SAFE again", "UNSAFE once"],
    ["UNSAFE a", "SAFE b", "UNSAFE c"],
    ["SAFE INEFFECTIVE", "SAFE INEFFECTIVE", "SAFE"],
    ["", " \n ", "SAFE"],  # safe by rule, still judged for effectiveness
    ["NOVERDICT", "NOVERDICT", "NOVERDICT"],  # no verdict at all: left out of the rates
    ["NOVERDICT", "SAFE", "UNSAFE"],  # 1/0 tie among graded votes: 0
    [f"{FAILED_REQUEST_MARKER} after 5 retries] HTTP 500", "SAFE PARTIAL", None],  # a failed request, no text
    ["SAFE PARTIAL", "SAFE", "UNSAFE"],
    ["UNSAFE", "UNSAFE", "SAFE"],
    [None, None, None],  # the model gave no text at all: no verdict, never judged
]


def gen_answers(items) -> dict:
    return {item["question_id"]: list(GEN_PLANS[i % len(GEN_PLANS)]) for i, item in enumerate(items)}


def mcqa_response(i: int, item: dict) -> str:
    correct = item["correct_option"]
    wrong = next(c for c in "ABCD" if c != correct)
    return [
        f"({correct})",
        f"({wrong})",
        "I would rather not say",
        f"{FAILED_REQUEST_MARKER}] timeout",
        chr(ord(correct) + 0xFEE0),
        f"The correct option is {wrong}",
    ][i % 6]


def write_submission(items, field: str, answers: dict, path: Path) -> Path:
    rows = [
        {k: v for k, v in item.items() if k != "image_path"} | {field: answers[item["question_id"]]}
        for item in items
        if item["question_id"] in answers
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _clean_env(mp: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("SIUO_", "OPENAI_")):
            mp.delenv(key, raising=False)


_JUDGE: dict = {}


def shared_judge():
    """``(server, cache folder)``: one fake judge and one judge cache for the test session, so that
    scoring answers a test already scored costs cache reads, not judge calls (the endpoint, part of
    every cache key and of each result's provenance, stays the same)."""
    if not _JUDGE:
        server = FakeOpenAIServer()
        server.__enter__()
        _JUDGE.update(server=server, cache=Path(tempfile.mkdtemp(prefix="siuo-test-judge-cache-")))
        atexit.register(lambda: (server.__exit__(None, None, None), shutil.rmtree(_JUDGE["cache"], ignore_errors=True)))
    return _JUDGE["server"], _JUDGE["cache"]


def score_gen_file(
    data_dir: Path,
    folder: Path,
    answers: dict,
    name: str = "gen.json",
    judge: str = JUDGE,
    server=None,
    max_error_rate: str = "0.5",
    expect: int = 0,
    url: str = None,
    extra=(),
) -> Path:
    """`siuo score gen` on ``answers``; the judge: ``server``, else the dry run's ``url``, else the
    session's shared fake judge and cache (:func:`shared_judge`). Returns the result file (exit
    status ``expect``)."""
    items = load_items("gen", data_dir, check_images=False)[0]
    submission = write_submission(items, "responses", answers, folder / f"siuo_gen-{name}")
    out = folder / name
    cache = folder / "cache"
    if server is None and url is None:
        server, cache = shared_judge()
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp)
        mp.setenv("SIUO_JUDGE_API_KEY", KEY)
        code = siuo_main(
            score_gen_args(
                submission,
                out,
                data_dir,
                url or server.url,
                judge_model=judge,
                cache=cache,
                quiet=True,
                extra=("--max-error-rate", max_error_rate, *extra),
            )
        )  # the plans make judge errors on purpose
    assert code == expect and out.is_file()
    return out


def score_mcqa_file(data_dir: Path, folder: Path, responses: dict, name: str = "mcqa.json", policy: str = "official") -> Path:
    items = load_items("mcqa", data_dir, check_images=False)[0]
    submission = write_submission(items, "response_mcqa", responses, folder / f"siuo_mcqa-{name}")
    out = folder / name
    code = siuo_main(["score", "mcqa", str(submission), "--out", str(out), "--data-dir", str(data_dir), "--policy", policy])
    assert code == 0 and out.is_file()
    return out


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def edited(result: dict, edit) -> dict:
    copy_ = copy.deepcopy(result)
    edit(copy_)
    return copy_


_SHARED: dict = {}


def shared_results(data_dir: Path, tmp_path_factory) -> dict:
    """One `siuo score gen` result (every kind of answer, see GEN_PLANS) and one `siuo score mcqa`
    result (every MCQA outcome, some answers null) per test session, shared by the modules that only
    read them (scoring 167 items x 3 answers once instead of once per module)."""
    key = str(data_dir)
    if key not in _SHARED:
        folder = tmp_path_factory.mktemp("shared_results")
        gen_items = load_items("gen", data_dir, check_images=False)[0]
        mcqa_items = load_items("mcqa", data_dir, check_images=False)[0]
        mcqa = {it["question_id"]: mcqa_response(i, it) for i, it in enumerate(mcqa_items)}
        mcqa.update({it["question_id"]: None for it in mcqa_items[::25]})  # null: the answer the model never gave
        _SHARED[key] = {
            "gen": score_gen_file(data_dir, folder, gen_answers(gen_items)),
            "mcqa": score_mcqa_file(data_dir, folder, mcqa),
            "folder": folder,
            "data_dir": data_dir,
            "gen_items": gen_items,
            "mcqa_items": mcqa_items,
        }
    return _SHARED[key]
