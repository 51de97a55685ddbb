"""Thin lmms-eval adapter: the hooks the YAMLs in ``yaml_tasks/lmms_eval/siuo`` point at.

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
  headline numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from . import harness_common as common
from . import paths, prompts, schema
from .harness_common import ENV_JUDGE_PREFLIGHT, ENV_MCQA_POLICY  # noqa: F401 (public names)


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


def _evaluator_locals() -> Optional[dict]:
    return common.caller_locals("simple_evaluate", "lmms_eval.evaluator")


def harness_call() -> common.HarnessCall:
    found = _evaluator_locals()
    if found is None:
        argv = sys.argv[1:]
        return common.HarnessCall(
            "lmms-eval", "lmms_eval", model=_argv_value(argv, "--model"), model_args=_argv_value(argv, "--model_args"),
            gen_kwargs=_argv_value(argv, "--gen_kwargs"), limit=_argv_value(argv, "--limit"),
            predict_only=any(arg in ("--predict_only", "-x") for arg in argv), force_simple="--force_simple" in argv,
            found_in="the command line")
    model = found.get("model")
    tracker = found.get("evaluation_tracker")
    date = found.get("datetime_str")

    def result_path(task: str) -> Optional[Path]:
        """Beside ``<output_path>/<model>/<date>_results.json``, where lmms-eval will write it."""
        if tracker is None or not getattr(tracker, "output_path", None) or not date:
            return None
        folder = getattr(tracker.general_config_tracker, "model_name_sanitized", None) or ""
        return Path(tracker.output_path) / folder / schema.lmms_eval_result_name(str(date).replace(":", "-"), task)

    return common.HarnessCall(
        "lmms-eval", "lmms_eval", model=model if isinstance(model, str) or model is None else type(model).__name__,
        model_args=found.get("model_args"), gen_kwargs=found.get("gen_kwargs"), limit=found.get("limit"),
        predict_only=bool(found.get("predict_only")), force_simple=bool(found.get("force_simple")),
        result_path=result_path, found_in="the evaluator call")


# ------------------------------------------------------------------------------------------ documents


def _begin(task: str, setting: str):
    docs = common.load_docs(setting, _info)
    config = _task_config(task)
    call = harness_call()
    found = class_decoding(call.model, call.model_args, call.gen_kwargs, _generation_kwargs(config), force_simple=call.force_simple)
    if found is not None:
        _warn_model_decoding(task, found)
    session = sessions.begin(task, call, task_config=config, model_decoding=found)
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
gen_process_results = common.make_gen_process_results(schema.GEN_TASK)
gen_vote3_process_results = common.make_gen_process_results(schema.GEN_VOTE3_TASK)

# ------------------------------------------------------------- model classes that change the decoding

# Some lmms-eval model classes do not decode as the task asks. The vLLM classes (0.7.3) generate the
# LARGER of the task's max_new_tokens and their own ``max_new_tokens`` model argument (default 4096;
# 1024 for the simple class), so SIUO's 5-token MCQA answers and 500-token generations would run to
# thousands of tokens - other numbers than the protocol's, and wasted GPU time; and when sampling
# (siuo_gen_vote3) the chat class adds top_p=0.95 where the task leaves top_p at 1.0 (the OpenAI
# default the official run used; it is not written into the task because OpenAI's reasoning models
# reject any top_p). Checked once per evaluation, when the scoring session begins (before any model
# runs), from the harness's arguments: warned about, and recorded in the result's provenance as
# ``harness.model_decoding``.


def _argv_value(argv, flag: str) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


def _kv_args(value) -> dict:
    """A harness ``k=v,k=v`` argument (string, or already a dict) as lmms-eval itself parses it."""
    if isinstance(value, dict):
        return value
    from lmms_eval.utils import simple_parse_args_string

    return simple_parse_args_string(value) if value else {}


def model_decoding(argv, task_generation_kwargs: dict) -> Optional[dict]:
    """:func:`class_decoding` for the model class and arguments named in a command line (``argv``)."""
    return class_decoding(_argv_value(argv, "--model"), _argv_value(argv, "--model_args"),
                          _argv_value(argv, "--gen_kwargs"), task_generation_kwargs,
                          force_simple="--force_simple" in argv)


def class_decoding(model: Optional[str], model_args, gen_kwargs, task_generation_kwargs: dict, *,
                   force_simple: bool = False) -> Optional[dict]:
    """How lmms-eval's model class ``model`` will really decode a task, where that differs from what
    the task (with ``gen_kwargs``) asks: ``{"model_class", "max_new_tokens"?, "top_p"?, "task": {...}}``;
    ``None`` when it does not differ, or when it can't be told.

    Applies the class's own rules (``_resolve_sampling_params`` / ``_select_max_new_tokens``, as
    lmms-eval's vLLM classes have them) to ``model_args``, so a change of those rules upstream is
    followed, not guessed.
    """
    import inspect

    if not model:
        return None
    try:
        requested = {**(task_generation_kwargs or {}), **_kv_args(gen_kwargs)}
        if not isinstance(requested.get("max_new_tokens"), int):
            return None
        from lmms_eval.models import get_model

        cls = get_model(model, force_simple=force_simple)
        if not hasattr(cls, "_select_max_new_tokens"):
            return None
        own = _kv_args(model_args).get("max_new_tokens")
        if not isinstance(own, int):
            default = inspect.signature(cls.__init__).parameters.get("max_new_tokens")
            if default is None or not isinstance(default.default, int):
                return None
            own = default.default
        probe = cls.__new__(cls)  # no __init__: no engine, only the class's own request rules
        probe.max_new_tokens = own
        if hasattr(cls, "_resolve_sampling_params"):
            params = probe._resolve_sampling_params(dict(requested))
            effective = {"max_new_tokens": params.get("max_tokens"), "top_p": params.get("top_p")}
        else:
            effective = {"max_new_tokens": probe._select_max_new_tokens(requested["max_new_tokens"])}
    except Exception:  # noqa: BLE001 - a check that can't tell must never stop a run
        return None
    found = {}
    if effective["max_new_tokens"] != requested["max_new_tokens"]:
        found["max_new_tokens"] = effective["max_new_tokens"]
    sampled = float(requested.get("temperature") or 0) > 0
    if sampled and effective.get("top_p") is not None and float(effective["top_p"]) != float(requested.get("top_p", 1.0)):
        found["top_p"] = effective["top_p"]
    if not found:
        return None
    return {"model_class": f"{cls.__module__}.{cls.__qualname__}", **found,
            "task": {"max_new_tokens": requested["max_new_tokens"], "top_p": requested.get("top_p", 1.0) if sampled else None}}


def _generation_kwargs(config: Optional[dict]) -> dict:
    return dict((config or {}).get("generation_kwargs") or {})


def _warn_model_decoding(task: str, found: dict) -> None:
    fixes = []
    if "max_new_tokens" in found:
        fixes.append(f"it will generate up to {found['max_new_tokens']} tokens per answer, not the task's "
                     f"{found['task']['max_new_tokens']} (it takes the larger of the task's max_new_tokens and "
                     "its own; add max_new_tokens=1 to --model_args so the task's value applies)")
    if "top_p" in found:
        fixes.append(f"it will sample with top_p={found['top_p']}, not the task's {found['task']['top_p']} "
                     f"(add top_p={found['task']['top_p']} to --gen_kwargs)")
    _warning(f"SIUO {task}: the model class {found['model_class']} does not decode as the SIUO protocol "
             f"asks: {'; '.join(fixes)}. Other decoding gives other numbers (and longer answers cost GPU "
             "time); recorded in the result's provenance as harness.model_decoding.")


# ---------------------------------------------------------------------------------------- aggregation


def _task_config(task: Optional[str]) -> Optional[dict]:
    """The task's YAML as lmms-eval reads it (hooks left unresolved)."""
    from lmms_eval import utils as lmms_utils

    path = paths.lmms_eval_tasks_dir() / "siuo" / f"{task}.yaml"
    if not task or not path.is_file():
        return None
    return lmms_utils.load_yaml_config(str(path), mode="simple")


sessions = common.Sessions(harness_call, _info, _warning)

aggregate_accuracy = sessions.metric("accuracy")
aggregate_unparsed = sessions.metric("unparsed")
aggregate_safe = sessions.metric("safe")
aggregate_effective = sessions.metric("effective")
aggregate_safe_effective = sessions.metric("safe_effective")
