"""What one harness evaluation was asked to do (:class:`HarnessCall`), and the ``harness`` part
of a result's provenance built from it.

Each adapter fills a :class:`HarnessCall` in its one ``harness_call()``: model, arguments,
predict-only and where the harness writes that model's results. Nothing here imports a harness.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from siuo_task.core import schema


def caller_locals(function: str, module: str) -> dict | None:
    """The local variables of the nearest caller frame running ``module.function`` (a harness's
    ``simple_evaluate``, whose arguments say what the evaluation was asked to do), or ``None``."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_globals.get("__name__") == module:
            return dict(frame.f_locals)
        frame = frame.f_back
    return None


@dataclass
class HarnessCall:
    """What one harness evaluation was asked to do, as its adapter found it.

    ``result_path(task)`` gives where the harness writes that model's results and the SIUO file's
    name derived from the run's stamp (``None``: the harness writes no files for this run). It is
    asked at write time: the harness names the model folder after the tasks are built.
    """

    name: str
    distribution: str
    model: str | None = None
    model_args: object = None
    gen_kwargs: object = None
    limit: object = None
    predict_only: bool = False
    force_simple: bool = False
    extra: dict = field(default_factory=dict)
    result_path: Callable[[str], Path | None] = lambda task: None
    found_in: str = "nothing"  # "the evaluator call", "the command line" or "nothing"


def harness_info(call: HarnessCall, task_config: Mapping | None) -> dict:
    """The ``harness`` part of a result's provenance, the same for every adapter.

    ``task_config`` is the task's YAML as the harness loads it (its decoding settings are recorded;
    ``--gen_kwargs`` overrides appear under ``gen_kwargs``).
    """
    try:
        from importlib.metadata import version

        harness_version = version(call.distribution)
    except Exception:  # pragma: no cover
        harness_version = None
    generation = None
    if task_config is not None:
        generation = dict(task_config.get("generation_kwargs") or {})
        if task_config.get("repeats"):
            generation["repeats"] = task_config["repeats"]
    return {
        "name": call.name,
        "version": harness_version,
        "task_generation_kwargs": generation,
        "model": call.model,
        "model_args": schema.redact_model_args(call.model_args),
        "gen_kwargs": call.gen_kwargs,
        "limit": call.limit,
        **call.extra,
    }
