"""Thin EleutherAI lm-eval (0.4.x) adapter: the hooks the YAMLs in ``yaml_tasks/lm_eval/siuo`` point at.

Same data, prompts, parsing, judge, metrics and result file as the lmms-eval tasks: documents come
from :mod:`siuo_task.data`, prompts from :mod:`siuo_task.prompts`, every number from
:mod:`siuo_task.scoring` through :mod:`siuo_task.harness_common`.

How a run flows (``lm_eval --model hf-multimodal ... --tasks siuo_gen --include_path DIR``):

- ``custom_dataset`` (called once while lm-eval builds the task, after the model is loaded and
  before any generation) returns the validated SIUO items as the ``test`` split - no dataset is
  downloaded - and, for the generation tasks, checks that the judge is usable.
- ``doc_to_image`` gives the item's image and ``doc_to_text`` the official prompt, preceded by
  lm-eval's ``<image>`` placeholder, which ``hf-multimodal``/``vllm-vlm`` turn into the model's
  image token (or into an image entry of the chat message with ``--apply_chat_template``); API
  model classes get the bare prompt (they send the image as a separate message part).
- ``process_results`` only records ``question_id`` and the answer(s).
- The aggregation functions score all answers at once (the judge once per task, shared by the
  three generation metrics), write the full result file, log the per-category table and return
  the headline numbers that lm-eval puts in its own results file.

lm-eval hands aggregation functions nothing but the per-item values, so the result file goes to
``SIUO_RESULTS_DIR`` when set, else ``<--output_path>/siuo/`` when the ``lm_eval`` command was
given one, else ``./siuo_results/``; the path is logged.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Optional

from . import harness_common as common
from . import prompts
from .paths import lm_eval_tasks_dir

# A child of lm-eval's logger, so it prints through the handler ``lm_eval`` sets up.
logger = logging.getLogger("lm_eval.siuo")

IMAGE_PLACEHOLDER = "<image>"  # lm-eval's placeholder (hf-multimodal, vllm-vlm)
ENV_IMAGE_PLACEHOLDER = "SIUO_IMAGE_PLACEHOLDER"
SPLIT = "test"

# ------------------------------------------------------------------------------- the lm-eval command


def _is_lm_eval_cli() -> bool:
    argv0 = sys.argv[0] if sys.argv else ""
    return Path(argv0).name in ("lm_eval", "lm-eval") or argv0.endswith(os.path.join("lm_eval", "__main__.py"))


@lru_cache(maxsize=1)
def _cli_args() -> Optional[object]:
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
    except (Exception, SystemExit):  # private API of a pinned version: provenance is best effort
        return None


def _predict_only() -> bool:
    """``lm_eval ... --predict_only``/``-x``. Python callers of ``simple_evaluate(predict_only=True)``
    can't be seen from here: they set ``SIUO_JUDGE_PREFLIGHT=0``."""
    if not _is_lm_eval_cli():
        return False
    args = _cli_args()
    if args is not None:
        return bool(getattr(args, "predict_only", False))
    return any(arg in ("--predict_only", "-x") for arg in sys.argv[1:])  # the CLI's parser was not usable


def _task_config(task: Optional[str]) -> Optional[dict]:
    """The task's YAML as lm-eval reads it (hooks left unresolved)."""
    path = lm_eval_tasks_dir() / "siuo" / f"{task}.yaml"
    if not task or not path.is_file():
        return None
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False)


def _harness_info(task: Optional[str] = None) -> dict:
    return common.harness_info("lm-eval", "lm_eval", _task_config(task), _cli_args(), fields=("apply_chat_template",))


def _output_path() -> Optional[str]:
    args = _cli_args()
    return getattr(args, "output_path", None) if args is not None else None


def _context(task: Optional[str], *_args, **_kwargs):
    return _harness_info(task), _output_path()


# ------------------------------------------------------------------------------------------ documents


def _dataset(setting: str) -> dict:
    return {SPLIT: common.load_docs(setting, logger.info)}


def mcqa_dataset(**_metadata) -> dict:
    """lm-eval's ``custom_dataset``: called with the task metadata and model arguments (unused)."""
    return _dataset("mcqa")


def gen_dataset(**_metadata) -> dict:
    docs = _dataset("gen")
    common.judge_preflight(logger.info, skip=_predict_only())
    return docs


# ------------------------------------------------------------------------------------------- requests


@lru_cache(maxsize=None)
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
    args = _cli_args()
    model = getattr(args, "model", None) if args is not None else None
    if isinstance(model, str) and _is_api_model(model):
        return ""
    return IMAGE_PLACEHOLDER


def doc_to_image(doc) -> list:
    return common.doc_images(doc)


def mcqa_doc_to_text(doc) -> str:
    return image_placeholder() + prompts.mcqa_prompt(doc["question"], doc["options"])


def gen_doc_to_text(doc) -> str:
    return image_placeholder() + prompts.gen_prompt(doc["question"])


doc_to_target = common.doc_to_target

# -------------------------------------------------------------------------------------------- results

mcqa_process_results = common.mcqa_process_results
gen_process_results = common.make_gen_process_results("siuo_gen")
gen_vote3_process_results = common.make_gen_process_results("siuo_gen_vote3")

# ---------------------------------------------------------------------------------------- aggregation

scorer = common.RecordScorer("lm-eval", logger.info, logger.warning)

aggregate_accuracy = scorer.metric("accuracy", _context)
aggregate_unparsed = scorer.metric("unparsed", _context)
aggregate_safe = scorer.metric("safe", _context)
aggregate_effective = scorer.metric("effective", _context)
aggregate_safe_effective = scorer.metric("safe_effective", _context)
