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

import sys
from typing import Optional

from . import harness_common as common
from . import paths, prompts
from .harness_common import ENV_JUDGE_PREFLIGHT, ENV_MCQA_POLICY, RESULTS_SUBDIR  # noqa: F401 (public names)


def _log():
    from loguru import logger  # lmms-eval's logger

    return logger


def _info(message: str) -> None:
    _log().info(message)


def _warning(message: str) -> None:
    _log().warning(message)


# ------------------------------------------------------------------------------------------ documents


def mcqa_process_docs(dataset):
    return common.load_docs("mcqa", _info)


def gen_process_docs(dataset):
    docs = common.load_docs("gen", _info)
    common.judge_preflight(_info, skip=_predict_only())
    return docs


def _predict_only() -> bool:
    return any(arg in ("--predict_only", "-x") for arg in sys.argv[1:])


# ------------------------------------------------------------------------------------------- requests


def doc_to_visual(doc, lmms_eval_specific_kwargs=None):
    return common.doc_images(doc)


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


doc_to_target = common.doc_to_target

# -------------------------------------------------------------------------------------------- results

mcqa_process_results = common.mcqa_process_results
gen_process_results = common.make_gen_process_results("siuo_gen")
gen_vote3_process_results = common.make_gen_process_results("siuo_gen_vote3")

# ---------------------------------------------------------------------------------------- aggregation


def _task_config(task: Optional[str]) -> Optional[dict]:
    """The task's YAML as lmms-eval reads it (hooks left unresolved)."""
    from lmms_eval import utils as lmms_utils

    path = paths.lmms_eval_tasks_dir() / "siuo" / f"{task}.yaml"
    if not task or not path.is_file():
        return None
    return lmms_utils.load_yaml_config(str(path), mode="simple")


def _harness_info(args, task: Optional[str]) -> dict:
    return common.harness_info("lmms-eval", "lmms_eval", _task_config(task), args)


def _context(task: Optional[str], args=None):
    return _harness_info(args, task), (getattr(args, "output_path", None) if args is not None else None)


scorer = common.RecordScorer("lmms-eval", _info, _warning)

aggregate_accuracy = scorer.metric("accuracy", _context)
aggregate_unparsed = scorer.metric("unparsed", _context)
aggregate_safe = scorer.metric("safe", _context)
aggregate_effective = scorer.metric("effective", _context)
aggregate_safe_effective = scorer.metric("safe_effective", _context)
