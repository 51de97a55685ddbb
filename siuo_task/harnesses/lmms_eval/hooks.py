"""Thin lmms-eval adapter: the hooks the YAMLs in ``tasks/`` beside it point at.

Data comes from :mod:`siuo_task.data`, prompts from :mod:`siuo_task.prompts`, and every number from
:mod:`siuo_task.scoring` - the same code path ``siuo score`` uses.

How a run flows:

- ``process_docs`` replaces the placeholder dataset with the validated SIUO items while the task is
  built - before any model runs - and begins the task's scoring session for this evaluation (judge
  settings, MCQA policy, decoding check; for the generation tasks it checks the judge is usable).
- ``doc_to_visual``/``doc_to_text`` (simple models) and ``doc_to_messages`` (chat models) build the
  request: the image plus the official prompt.
- ``process_results`` only records ``question_id`` and the answer(s): it runs per rank, in a thread
  pool, before the gather, so it does no I/O and can't fail on a judge.
- The aggregation functions run once, on rank 0, after the gather: they hand the records to the
  task's session, which scores all answers at once (the judge concurrently, through its disk
  cache), writes the full result file into the model's folder beside lmms-eval's own files
  (``<output_path>/<model>/<date>_siuo_<task>.json``), logs the per-category table and returns the
  headline numbers. The judge's tokens go to lmms-eval's usage accounting (0.7.x, :mod:`.usage`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from siuo_task.core import prompts, schema
from siuo_task.core.layouts import LMMS_EVAL, lmms_eval_stamp
from siuo_task.harnesses import paths, records
from siuo_task.harnesses.call import HarnessCall, caller_locals
from siuo_task.harnesses.lmms_eval.decoding import argv_value, class_decoding, generation_kwargs, warn_model_decoding
from siuo_task.harnesses.lmms_eval.usage import judge_usage_sink
from siuo_task.harnesses.session import ENV_JUDGE_PREFLIGHT, ENV_MCQA_POLICY, Sessions  # noqa: F401 (public names)


def _log():
    from loguru import logger  # lmms-eval's logger

    return logger


def _info(message: str) -> None:
    _log().info(message)


def _warning(message: str) -> None:
    _log().warning(message)


# ------------------------------------------------------------------------------- the harness's call
#
# The one place that knows how lmms-eval 0.7.3 hands a task what it was asked to do. The task hooks
# get no arguments that say so, but they run inside ``lmms_eval.evaluator.simple_evaluate`` (the
# CLI and Python callers alike), whose arguments hold the model, its arguments, predict-only, the
# evaluation tracker (output folder and model folder) and the run's date, which names the
# harness's results file. Outside that call (a hook called directly) the command line is read.


def _evaluator_locals() -> dict | None:
    return caller_locals("simple_evaluate", "lmms_eval.evaluator")


def harness_call() -> HarnessCall:
    found = _evaluator_locals()
    if found is None:
        argv = sys.argv[1:]
        return HarnessCall(
            "lmms-eval",
            "lmms_eval",
            model=argv_value(argv, "--model"),
            model_args=argv_value(argv, "--model_args"),
            gen_kwargs=argv_value(argv, "--gen_kwargs"),
            limit=argv_value(argv, "--limit"),
            predict_only=any(arg in ("--predict_only", "-x") for arg in argv),
            force_simple="--force_simple" in argv,
            found_in="the command line",
        )
    model = found.get("model")
    tracker = found.get("evaluation_tracker")
    date = found.get("datetime_str")

    def result_path(task: str) -> Path | None:
        """Beside ``<output_path>/<model>/<date>_results.json``, where lmms-eval will write it."""
        if tracker is None or not getattr(tracker, "output_path", None) or not date:
            return None
        folder = getattr(tracker.general_config_tracker, "model_name_sanitized", None) or ""
        return Path(tracker.output_path) / folder / LMMS_EVAL.siuo_name(lmms_eval_stamp(date), task)

    return HarnessCall(
        "lmms-eval",
        "lmms_eval",
        model=model if isinstance(model, str) or model is None else type(model).__name__,
        model_args=found.get("model_args"),
        gen_kwargs=found.get("gen_kwargs"),
        limit=found.get("limit"),
        predict_only=bool(found.get("predict_only")),
        force_simple=bool(found.get("force_simple")),
        result_path=result_path,
        found_in="the evaluator call",
    )


# ------------------------------------------------------------------------------------------ documents


def _begin(task: str, setting: str):
    docs = records.load_docs(setting, _info)
    config = _task_config(task)
    call = harness_call()
    found = class_decoding(call.model, call.model_args, call.gen_kwargs, generation_kwargs(config), force_simple=call.force_simple)
    if found is not None:
        warn_model_decoding(task, found, _warning)
    usage_sink = judge_usage_sink(task) if schema.is_gen_task(task) else None  # the judge's tokens in lmms-eval's usage
    session = sessions.begin(task, call, task_config=config, model_decoding=found, usage_sink=usage_sink)
    session.preflight()
    return docs


def mcqa_process_docs(dataset):
    return _begin(schema.MCQA_TASK, "mcqa")


def gen_process_docs(dataset, task: str = schema.GEN_TASK):
    return _begin(task, "gen")


def gen_vote3_process_docs(dataset):
    return gen_process_docs(dataset, task=schema.GEN_VOTE3_TASK)


# ------------------------------------------------------------------------------------------- requests


def doc_to_visual(doc, lmms_eval_specific_kwargs=None):
    return records.doc_images(doc)


def _kw(kwargs: dict | None) -> dict:
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


doc_to_target = records.doc_to_target

# -------------------------------------------------------------------------------------------- results

mcqa_process_results = records.mcqa_process_results
gen_process_results = records.make_gen_process_results(schema.GEN_TASK)
gen_vote3_process_results = records.make_gen_process_results(schema.GEN_VOTE3_TASK)

# ---------------------------------------------------------------------------------------- aggregation


def _task_config(task: str | None) -> dict | None:
    """The task's YAML as lmms-eval reads it (hooks left unresolved)."""
    from lmms_eval import utils as lmms_utils

    path = paths.lmms_eval_tasks_dir() / "siuo" / f"{task}.yaml"
    if not task or not path.is_file():
        return None
    return lmms_utils.load_yaml_config(str(path), mode="simple")


sessions = Sessions(harness_call, _info, _warning)

aggregate_accuracy = sessions.metric("accuracy")
aggregate_unparsed = sessions.metric("unparsed")
aggregate_safe = sessions.metric("safe")
aggregate_effective = sessions.metric("effective")
aggregate_safe_effective = sessions.metric("safe_effective")
