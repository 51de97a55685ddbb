"""Read an inspect log's header as the harness results dict that ``siuo report``, ``verify``,
``compare`` and ``export`` read from every harness (the ``reader`` of inspect's row in
:data:`siuo_task.core.layouts.LAYOUTS`).

``{"results": {task: {metric: value}}, "config": {"model", "model_args"}, "model_name", "n-samples",
"inspect": {"status", "eval_id", "task", "error", "log"}}``: a SIUO task appears under its SIUO name
(``siuo_task/siuo_gen`` -> ``siuo_gen``) even when its run failed (then without numbers), so the
per-item file beside the log is still found and checked; other tasks keep inspect's name and give
their metrics as capability numbers. A log still being written lists no task (readers skip it).

Only the header is read (no samples). ``.eval`` logs are zip files compressed with Zstandard, which
Python's own zipfile can't read before 3.14: they are read with inspect's public
``read_eval_log(header_only=True)``, so reading them needs inspect-ai installed (the ``inspect``
extra); ``.json`` logs are read without it. Nothing here imports inspect at import time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from siuo_task.core import schema
from siuo_task.core.layouts import inspect_task_name as siuo_task_name


class InspectLogError(ValueError):
    """A log that can't be read; the message names the file and the fix."""


def _header(path: Path) -> Mapping:
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        read_eval_log = None
    if read_eval_log is not None:
        try:
            log = read_eval_log(str(path), header_only=True)
        except Exception as exc:
            raise InspectLogError(f"{path}: not a readable inspect log ({type(exc).__name__}: {exc})") from None
        return log.model_dump(mode="json", exclude_none=True)
    if path.suffix == ".json":
        try:
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError) as exc:
            raise InspectLogError(f"{path}: not a readable inspect log ({exc})") from None
    raise InspectLogError(
        f"{path}: reading inspect's .eval logs needs inspect-ai (pip install 'siuo-task[inspect]'), "
        "or write JSON logs (inspect eval --log-format json)"
    )


def _metrics(results: Mapping | None) -> dict:
    """``{metric: value}`` of a log's results (the first scorer's name wins where two share a metric name)."""
    out: dict = {}
    for score in (results or {}).get("scores") or []:
        for key, metric in (score.get("metrics") or {}).items():
            value = metric.get("value") if isinstance(metric, Mapping) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(key, value)
    return out


def read_results(path) -> dict:
    """One inspect log as a harness results dict (see the module docstring)."""
    path = Path(path)
    header = _header(path)
    spec = header.get("eval")
    if not isinstance(spec, Mapping) or "task" not in spec:
        raise InspectLogError(f"{path}: not an inspect log (no 'eval' header)")
    task = siuo_task_name(spec["task"]) or str(spec["task"])
    results = header.get("results") if isinstance(header.get("results"), Mapping) else None
    error = header.get("error") if isinstance(header.get("error"), Mapping) else None
    model_args: Any = spec.get("model_args") or {}
    running = header.get("status") == "started"  # a log still being written: no task to read yet
    return {
        "results": {task: _metrics(results)} if not running and (results is not None or siuo_task_name(spec["task"])) else {},
        "config": {"model": spec.get("model"), "model_args": schema.redact_model_args(model_args)},
        "model_name": spec.get("model"),
        "n-samples": {task: {"effective": (results or {}).get("total_samples")}},
        "inspect": {
            "status": header.get("status"),
            "eval_id": spec.get("eval_id"),
            "task": spec.get("task"),
            "error": (error or {}).get("message"),
            "log": str(path),
        },
    }
