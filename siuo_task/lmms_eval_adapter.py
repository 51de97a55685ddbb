"""Thin lmms-eval adapter: the hooks the YAMLs in ``yaml_tasks/lmms_eval/siuo`` point at.

Data comes from :mod:`siuo_task.data`, prompts from :mod:`siuo_task.prompts`, and every number from
:mod:`siuo_task.scoring` - the same code path ``siuo score`` uses.

How a run flows:

- ``process_docs`` replaces the placeholder dataset with the validated SIUO items (and, for the
  generation tasks, checks the judge is usable) while the task is built - before any model runs.
- ``doc_to_visual``/``doc_to_text`` (simple models) and ``doc_to_messages`` (chat models) build the
  request: the image plus the official prompt.
- ``process_results`` only records ``question_id`` and the answer(s): it runs per rank, in a thread
  pool, before the gather, so it does no I/O and can't fail on a judge.
- The aggregation functions run once, on rank 0, after the gather: they score all answers at once
  (the judge concurrently, through its disk cache), write the full result file next to the
  harness's output, log the per-category table and return the headline numbers.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Optional

from . import data, paths, prompts, scoring
from .mcqa import POLICIES

ENV_MCQA_POLICY = "SIUO_MCQA_POLICY"
ENV_JUDGE_PREFLIGHT = "SIUO_JUDGE_PREFLIGHT"
RESULTS_SUBDIR = "siuo"


def _log():
    from loguru import logger  # lmms-eval's logger

    return logger


# ------------------------------------------------------------------------------------------ documents


def _docs(setting: str):
    import datasets

    items, source = data.load_items(setting)
    _log().info(f"SIUO {setting}: {len(items)} items from {source.origin} ({source.data_dir})")
    return datasets.Dataset.from_list(items)


def mcqa_process_docs(dataset):
    return _docs("mcqa")


def gen_process_docs(dataset):
    docs = _docs("gen")
    _judge_preflight()
    return docs


def _predict_only() -> bool:
    return any(arg in ("--predict_only", "-x") for arg in sys.argv[1:])


def _judge_preflight() -> None:
    """Fail before generation, not after an hour of GPU time, when the judge can't be used."""
    if _predict_only() or os.environ.get(ENV_JUDGE_PREFLIGHT, "1") == "0":
        return
    from .judge import JudgeClient, JudgeConfig

    config = JudgeConfig.from_env()
    with JudgeClient(config) as client:
        client.preflight()
    _log().info(f"SIUO judge: {config.model} at {config.endpoint_host} is reachable")


# ------------------------------------------------------------------------------------------- requests


def doc_to_visual(doc, lmms_eval_specific_kwargs=None):
    from PIL import Image

    with Image.open(doc["image_path"]) as img:
        return [img.convert("RGB")]


def _kw(kwargs: Optional[dict]) -> dict:
    kwargs = kwargs or {}
    return {"pre_prompt": kwargs.get("pre_prompt", ""), "post_prompt": kwargs.get("post_prompt", "")}


def mcqa_doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return prompts.mcqa_prompt(doc["question"], doc["options"], **_kw(lmms_eval_specific_kwargs))


def gen_doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return prompts.gen_prompt(doc["question"], **_kw(lmms_eval_specific_kwargs))


def _messages(doc, text):
    return [{"role": "user", "content": [{"type": "image", "url": doc_to_visual(doc)[0]}, {"type": "text", "text": text}]}]


def mcqa_doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return _messages(doc, mcqa_doc_to_text(doc, lmms_eval_specific_kwargs))


def gen_doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return _messages(doc, gen_doc_to_text(doc, lmms_eval_specific_kwargs))


def doc_to_target(doc):
    return doc.get("correct_option", "")


# -------------------------------------------------------------------------------------------- results


def _answers(results) -> list:
    """The item's answers: lmms-eval 0.7.3 hands over a flat, whitespace-stripped list (one answer, or
    the ``take_first_k`` answers of siuo_gen_vote3); a nested list is flattened in case that changes."""
    results = list(results or [])
    if results and isinstance(results[0], (list, tuple)):
        results = list(results[0])
    return [a if isinstance(a, str) else "" for a in results] or [""]


def mcqa_process_results(doc, results):
    record = {"task": "siuo_mcqa", "question_id": doc["question_id"], "response": _answers(results)[0]}
    return {"accuracy": record, "unparsed": record}


def _gen_results(task: str):
    def process_results(doc, results):
        record = {"task": task, "question_id": doc["question_id"], "answers": _answers(results)}
        return {name: record for name in scoring.GEN_METRICS}

    process_results.__name__ = f"{task}_process_results"
    return process_results


gen_process_results = _gen_results("siuo_gen")
gen_vote3_process_results = _gen_results("siuo_gen_vote3")


# ---------------------------------------------------------------------------------------- aggregation

_memo: dict = {}
_memo_lock = threading.Lock()


def _task_generation_kwargs(task: str) -> Optional[dict]:
    """The decoding settings the task's YAML asks for (``--gen_kwargs`` overrides are in ``gen_kwargs``)."""
    from lmms_eval import utils as lmms_utils

    path = paths.lmms_eval_tasks_dir() / "siuo" / f"{task}.yaml"
    if not path.is_file():
        return None
    config = lmms_utils.load_yaml_config(str(path), mode="simple")
    kwargs = dict(config.get("generation_kwargs") or {})
    if config.get("repeats"):
        kwargs["repeats"] = config["repeats"]
    return kwargs


def _harness_info(args, task: str) -> dict:
    try:
        from importlib.metadata import version

        harness_version = version("lmms_eval")
    except Exception:  # pragma: no cover
        harness_version = None
    info = {"name": "lmms-eval", "version": harness_version, "task_generation_kwargs": _task_generation_kwargs(task)}
    if args is not None:
        info["model"] = getattr(args, "model", None)
        info["model_args"] = _redact_model_args(getattr(args, "model_args", None))
        info["gen_kwargs"] = getattr(args, "gen_kwargs", None)
        info["limit"] = getattr(args, "limit", None)
    return info


def _redact_model_args(model_args):
    if not isinstance(model_args, str):
        return model_args
    parts = []
    for part in model_args.split(","):
        key = part.split("=", 1)[0]
        parts.append(f"{key}=<redacted>" if any(s in key.lower() for s in ("key", "token", "secret", "password")) else part)
    return ",".join(parts)


def _write_result(result: dict, task: str, args) -> Optional[Path]:
    base = getattr(args, "output_path", None) if args is not None else None
    folder = Path(base).expanduser() / RESULTS_SUBDIR if base else Path.cwd() / "siuo_results"
    folder.mkdir(parents=True, exist_ok=True)
    # microseconds and the pid: runs of several models share this folder and may finish in the same second
    stamp = _dt.datetime.now().strftime("%Y%m%d_%H%M%S_%f")
    path = folder / f"{task}_{stamp}_{os.getpid()}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _log_table(result: dict, path: Optional[Path]) -> None:
    names = list(result["metrics"])
    lines = [f"SIUO {result['task']}: " + ", ".join(f"{n}={result['metrics'][n]}" for n in names)]
    for cat, row in result["by_category"].items():
        lines.append(f"  {cat:32s} " + "  ".join(f"{n}={row.get(n)}" for n in names) + f"  (n={row['n']})")
    if "judge_errors" in result:
        lines.append(f"  judge errors: {result['judge_errors']}, generation failures: {result['counts']['generation_failures']}")
    else:
        lines.append(f"  unparsed: {result['counts']['unparsed']}, failed requests: {result['counts']['failed']}")
    if path is not None:
        lines.append(f"  per-item records and provenance: {path}")
    _log().info("\n".join(lines))
    failures = result["counts"].get("failed") or result["counts"].get("generation_failures")
    if failures:
        _log().warning(f"SIUO {result['task']}: {failures} model request(s) failed; they are counted, not scored as answers")


def _score(items, args) -> dict:
    """Score once per distinct set of answers; every metric's aggregation reuses the result."""
    key = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()
    with _memo_lock:
        if key in _memo:
            return _memo[key]
        task = items[0]["task"] if items else "siuo"
        if task == "siuo_mcqa":
            policy = os.environ.get(ENV_MCQA_POLICY, "official")
            if policy not in POLICIES:
                raise ValueError(f"{ENV_MCQA_POLICY}={policy!r}: expected one of {', '.join(POLICIES)}")
            mcqa_items, source = data.load_items("mcqa", check_images=False)
            responses = {r["question_id"]: r["response"] for r in items}
            result = scoring.score_mcqa(responses, mcqa_items, policy=policy, source=source, harness=_harness_info(args, task))
        else:
            from .judge import JudgeClient, JudgeConfig

            gen_items, source = data.load_items("gen", check_images=False)
            answers = {r["question_id"]: r["answers"] for r in items}
            n_answers = max(len(a) for a in answers.values()) if answers else 0
            variant = f"{task}: {n_answers} answer(s) per item, majority vote"
            with JudgeClient(JudgeConfig.from_env()) as client:
                result = scoring.score_gen(answers, gen_items, client, source=source, harness=_harness_info(args, task), variant=variant)
            result["task"] = task
        path = _write_result(result, result["task"], args)
        _log_table(result, path)
        _memo[key] = result
        return result


def _metric(name: str):
    def aggregate(items, args=None):
        return _score(items, args)["metrics"][name]

    aggregate.__name__ = f"siuo_aggregate_{name}"
    return aggregate


aggregate_accuracy = _metric("accuracy")
aggregate_unparsed = _metric("unparsed")
aggregate_safe = _metric("safe")
aggregate_effective = _metric("effective")
aggregate_safe_effective = _metric("safe_effective")
