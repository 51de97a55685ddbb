"""Thin EleutherAI lm-eval (0.4.x) adapter: the hooks the YAMLs in ``tasks/`` beside it point at.

Same data, prompts, parsing, judge, metrics and result file as the lmms-eval tasks: documents come
from :mod:`siuo_task.data`, prompts from :mod:`siuo_task.prompts`, every number from
:mod:`siuo_task.scoring` through :mod:`siuo_task.harness_common`.

How a run flows (``lm_eval --model hf-multimodal ... --tasks siuo_gen --include_path DIR``):

- ``custom_dataset`` (called once while lm-eval builds the task, after the model is loaded and
  before any generation) returns the validated SIUO items as the ``test`` split - no dataset is
  downloaded - and begins the task's scoring session for this evaluation (judge settings, MCQA
  policy; for the generation tasks it checks that the judge is usable).
- ``doc_to_image`` gives the item's image and ``doc_to_text`` the official prompt, preceded by
  lm-eval's ``<image>`` placeholder, which ``hf-multimodal``/``vllm-vlm`` turn into the model's
  image token (or into an image entry of the chat message with ``--apply_chat_template``); API
  model classes get the bare prompt (they send the image as a separate message part).
- ``process_results`` only records ``question_id`` and the answer(s).
- The aggregation functions hand the records to the task's session, which scores all answers at
  once (the judge once per task, shared by the three generation metrics), writes the full result
  file into the model's folder beside lm-eval's own files
  (``<output_path>/<model>/siuo_<task>_<start>.json``, ``<start>`` being the ``date`` lm-eval
  records in its results file), logs the per-category table and returns the headline numbers.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import cache
from pathlib import Path

from siuo_task.core import prompts, schema
from siuo_task.core.layouts import LM_EVAL, lm_eval_stamp
from siuo_task.harnesses import records
from siuo_task.harnesses.call import HarnessCall, caller_locals
from siuo_task.harnesses.paths import lm_eval_tasks_dir
from siuo_task.harnesses.session import Sessions

# A child of lm-eval's logger, so it prints through the handler ``lm_eval`` sets up.
logger = logging.getLogger("lm_eval.siuo")

IMAGE_PLACEHOLDER = "<image>"  # lm-eval's placeholder (hf-multimodal, vllm-vlm)
ENV_IMAGE_PLACEHOLDER = "SIUO_IMAGE_PLACEHOLDER"
SPLIT = "test"

# ------------------------------------------------------------------------------- the harness's call
#
# The one place that knows how lm-eval 0.4.x hands a task what it was asked to do. The task hooks
# get no such arguments, but they run inside ``lm_eval.evaluator.simple_evaluate`` (the CLI and
# Python callers alike), whose arguments hold the model, its arguments, predict-only, the
# evaluation tracker (output folder, model folder) and the run's start time, which lm-eval records
# as ``date`` in its results file. Outside that call (a hook called directly) the ``lm_eval``
# command line is parsed with lm-eval's own parser.


def _evaluator_locals() -> dict | None:
    return caller_locals("simple_evaluate", "lm_eval.evaluator")


def _is_lm_eval_cli() -> bool:
    argv0 = sys.argv[0] if sys.argv else ""
    return Path(argv0).name in ("lm_eval", "lm-eval") or argv0.endswith(os.path.join("lm_eval", "__main__.py"))


def _cli_args() -> object | None:
    """The ``lm_eval`` command's own arguments, parsed with its own parser; ``None`` outside that command."""
    if not _is_lm_eval_cli():
        return None
    try:
        from lm_eval._cli.harness import HarnessCLI

        argv = sys.argv[1:]
        parser = HarnessCLI()._parser
        if not argv or argv[0] not in ("run",):  # the CLI inserts "run" itself; be robust if it has not yet
            argv = ["run", *argv]
        args, _ = parser.parse_known_args(argv)
        return args
    except (Exception, SystemExit):  # private API of a pinned version: best effort
        return None


def harness_call() -> HarnessCall:
    found = _evaluator_locals()
    if found is None:
        args = _cli_args()
        if args is None:
            return HarnessCall("lm-eval", "lm_eval", extra={"apply_chat_template": None})
        return HarnessCall(
            "lm-eval",
            "lm_eval",
            model=getattr(args, "model", None),
            model_args=getattr(args, "model_args", None),
            gen_kwargs=getattr(args, "gen_kwargs", None),
            limit=getattr(args, "limit", None),
            predict_only=bool(getattr(args, "predict_only", False)),
            extra={"apply_chat_template": getattr(args, "apply_chat_template", None)},
            found_in="the command line",
        )
    model = found.get("model")
    tracker = found.get("evaluation_tracker")
    start = found.get("start_date")

    def result_path(task: str) -> Path | None:
        """Beside lm-eval's ``results_<time>.json`` of this run (named after the run's recorded start)."""
        if tracker is None or not getattr(tracker, "output_path", None) or not isinstance(start, (int, float)):
            return None
        base = Path(tracker.output_path)
        folder = base.parent if base.suffix == ".json" else base / str(tracker.general_config_tracker.model_name_sanitized)
        return folder / LM_EVAL.siuo_name(lm_eval_stamp(start), task)

    return HarnessCall(
        "lm-eval",
        "lm_eval",
        model=model if isinstance(model, str) or model is None else type(model).__name__,
        model_args=found.get("model_args"),
        gen_kwargs=found.get("gen_kwargs"),
        limit=found.get("limit"),
        predict_only=bool(found.get("predict_only")),
        extra={"apply_chat_template": found.get("apply_chat_template")},
        result_path=result_path,
        found_in="the evaluator call",
    )


def _task_config(task: str | None) -> dict | None:
    """The task's YAML as lm-eval reads it (hooks left unresolved)."""
    path = lm_eval_tasks_dir() / "siuo" / f"{task}.yaml"
    if not task or not path.is_file():
        return None
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False)


# ------------------------------------------------------------------------------------------ documents


def _begin(task: str, setting: str) -> dict:
    docs = {SPLIT: records.load_docs(setting, logger.info)}
    session = sessions.begin(task, task_config=_task_config(task))
    session.preflight()
    return docs


def mcqa_dataset(**_metadata) -> dict:
    """lm-eval's ``custom_dataset``: called with the task metadata and model arguments (unused)."""
    return _begin(schema.MCQA_TASK, "mcqa")


def gen_dataset(**_metadata) -> dict:
    return _begin(schema.GEN_TASK, "gen")


def gen_vote3_dataset(**_metadata) -> dict:
    return _begin(schema.GEN_VOTE3_TASK, "gen")


# ------------------------------------------------------------------------------------------- requests


@cache
def _is_api_model(name: str) -> bool:
    """Whether lm-eval's model class ``name`` is an HTTP API class (they attach the image themselves)."""
    try:
        from lm_eval.api.registry import get_model
        from lm_eval.models.api_models import TemplateAPI

        return issubclass(get_model(name), TemplateAPI)
    except Exception:  # unknown name, registry changes: keep lm-eval's default convention
        return False


def image_placeholder() -> str:
    """What goes before the prompt to mark the image's place.

    ``hf-multimodal`` and ``vllm-vlm`` need lm-eval's ``<image>`` (they swap it for the model's image
    token, or for an image entry of the chat message); the API classes (``local-chat-completions``,
    ``openai-chat-completions``, ...) send the image as its own message part and would pass the
    placeholder on as literal text, so for them the prompt stays the bare official one.
    ``SIUO_IMAGE_PLACEHOLDER`` overrides the choice (e.g. ``""`` for API models driven from Python).
    """
    if ENV_IMAGE_PLACEHOLDER in os.environ:
        return os.environ[ENV_IMAGE_PLACEHOLDER]
    model = sessions.latest_model()
    if isinstance(model, str) and _is_api_model(model):
        return ""
    return IMAGE_PLACEHOLDER


def doc_to_image(doc) -> list:
    return records.doc_images(doc)


def mcqa_doc_to_text(doc) -> str:
    return image_placeholder() + prompts.mcqa_prompt(doc["question"], doc["options"])


def gen_doc_to_text(doc) -> str:
    return image_placeholder() + prompts.gen_prompt(doc["question"])


doc_to_target = records.doc_to_target

# -------------------------------------------------------------------------------------------- results

mcqa_process_results = records.mcqa_process_results
gen_process_results = records.make_gen_process_results(schema.GEN_TASK)
gen_vote3_process_results = records.make_gen_process_results(schema.GEN_VOTE3_TASK)

# ---------------------------------------------------------------------------------------- aggregation

sessions = Sessions(harness_call, logger.info, logger.warning)

aggregate_accuracy = sessions.metric("accuracy")
aggregate_unparsed = sessions.metric("unparsed")
aggregate_safe = sessions.metric("safe")
aggregate_effective = sessions.metric("effective")
aggregate_safe_effective = sessions.metric("safe_effective")
