"""The SIUO result schema and its vocabulary: one owner for task and metric names, the result
file's fields and names, where it goes beside a harness run, the atomic writer and secret-key hints.

No harness imports; the scoring core, the harness adapters, ``siuo score``, the report and the
export all read their names from here.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Mapping, Optional

# ------------------------------------------------------------------------------------------- names

MCQA_TASK = "siuo_mcqa"
GEN_TASK = "siuo_gen"
GEN_VOTE3_TASK = "siuo_gen_vote3"
GEN_TASKS = (GEN_TASK, GEN_VOTE3_TASK)
TASKS = (GEN_TASK, GEN_VOTE3_TASK, MCQA_TASK)
GROUPS = ("siuo",)

GEN_METRICS = ("safe", "effective", "safe_effective")
MCQA_METRICS = ("accuracy", "unparsed")
METRICS = {MCQA_TASK: MCQA_METRICS, GEN_TASK: GEN_METRICS, GEN_VOTE3_TASK: GEN_METRICS}

# The per-item record field that holds an item's score for one metric (0 or 100, the metric's own
# scale), written by the aggregation after the one scoring; lmms-eval's task config names it
# (``score_key``) and computes ``<metric>_stderr_clt`` from it. Items are clustered by their image
# (``cluster_key``) for ``_stderr_clustered``: one image per SIUO item, so it equals the CLT one.
ITEM_SCORE_KEY = "score"
ITEM_CLUSTER_KEY = "image"

# Top-level fields every result carries (README, "Result files").
FIELDS = ("task", "metrics", "ci95", "counts", "by_category", "items", "provenance")
VALID = "valid"  # bool: False when something makes the numbers unusable
INVALID_REASONS = "invalid_reasons"  # [str, ...], empty when valid


class SIUOInvalidResult(RuntimeError):
    """The result file was written but its numbers must not be used (it says ``"valid": false``).
    Also importable as ``siuo_task.scoring.SIUOInvalidResult``."""


def check_valid(result: Mapping, path=None) -> None:
    """Raise :class:`SIUOInvalidResult` when ``result`` is marked invalid (after it has been written)."""
    if result.get(VALID, True):
        return
    where = f" (written to {path})" if path else ""
    reasons = "; ".join(result.get(INVALID_REASONS) or ["no reason given"])
    raise SIUOInvalidResult(f"{result.get('task', 'SIUO')}: the result is INVALID{where}: {reasons}")


def is_gen_task(task: Optional[str]) -> bool:
    return task in GEN_TASKS


def setting_of(task: str) -> str:
    """``"gen"`` or ``"mcqa"``: the data setting a task reads."""
    if task not in TASKS:
        raise ValueError(f"unknown SIUO task {task!r}; expected one of {', '.join(TASKS)}")
    return "mcqa" if task == MCQA_TASK else "gen"


def is_result(payload) -> bool:
    """Whether a JSON payload is a SIUO result file."""
    return (
        isinstance(payload, dict)
        and payload.get("task") in TASKS
        and isinstance(payload.get("metrics"), dict)
        and isinstance(payload.get("provenance"), dict)
    )


# ---------------------------------------------------------------------------------------- secrets

SECRET_HINTS = ("key", "token", "secret", "password")
REDACTED = "<redacted>"


def is_secret_key(name) -> bool:
    """A setting whose value must never be written out (``api_key``, ``hf_token``, ...)."""
    return any(hint in str(name).lower() for hint in SECRET_HINTS)


def redact_model_args(model_args):
    """Model arguments with secret-looking values hidden (``a=1,api_key=x`` or a dict)."""
    if isinstance(model_args, Mapping):
        return {k: (REDACTED if is_secret_key(k) else v) for k, v in model_args.items()}
    if not isinstance(model_args, str):
        return model_args
    parts = []
    for part in model_args.split(","):
        key = part.split("=", 1)[0]
        parts.append(f"{key}={REDACTED}" if is_secret_key(key) else part)
    return ",".join(parts)


# ----------------------------------------------------------------------------------- file names
#
# A harness run writes its results per model folder; the SIUO per-item file of task T sits in the
# same folder and is named after the run's own stamp, so a reader derives it from the harness's
# results file alone:
#
#   lmms-eval  <out>/<model>/<date>_results.json      ->  <out>/<model>/<date>_siuo_<T>.json
#              (<date>: the file name's prefix, the run's ``date`` with ':' as '-')
#   lm-eval    <out>/<model>/results_<iso>.json        ->  <out>/<model>/siuo_<T>_<start>.json
#              (<start>: the run's ``date`` field, its start time in seconds, as JSON writes it)
#
# Without a harness output folder (Python callers, SIUO_RESULTS_DIR): <folder>/<T>_<time>_<id>.json.
# Older versions wrote every model's files to <out>/siuo/<T>_<time>_<pid>.json (LEGACY_SUBDIR).

LMMS_EVAL_RESULTS_SUFFIX = "_results.json"
LM_EVAL_RESULTS_PREFIX = "results_"
LEGACY_SUBDIR = "siuo"
DEFAULT_RESULTS_DIR = "siuo_results"
ENV_RESULTS_DIR = "SIUO_RESULTS_DIR"


def lmms_eval_result_name(date_id: str, task: str) -> str:
    return f"{date_id}_siuo_{task}.json"


def lm_eval_result_name(start: float, task: str) -> str:
    return f"siuo_{task}_{json.dumps(start)}.json"


def standalone_result_name(task: str, identity: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d_%H%M%S_%f")
    return f"{task}_{stamp}_{identity[:8]}.json"


def linked_result_path(harness_results_path: Path, harness_results: Mapping, task: str) -> Optional[Path]:
    """The SIUO per-item file that belongs to one harness results file, by name alone.

    lm-eval records its start time as a number in ``date``; lmms-eval names its file ``<date>_results.json``.
    """
    path = Path(harness_results_path)
    date = harness_results.get("date")
    if isinstance(date, (int, float)) and not isinstance(date, bool):
        return path.with_name(lm_eval_result_name(date, task))
    if path.name.endswith(LMMS_EVAL_RESULTS_SUFFIX):
        return path.with_name(lmms_eval_result_name(path.name[: -len(LMMS_EVAL_RESULTS_SUFFIX)], task))
    return None


def is_legacy_result_name(name: str) -> bool:
    return re.match(r"^siuo_(gen|gen_vote3|mcqa)_\d{8}_\d{6}", name) is not None


def results_folder(output_path=None) -> Path:
    """Where a result without a harness model folder goes: ``SIUO_RESULTS_DIR``, else
    ``<output_path>`` (a ``.json`` output path means its folder), else ``./siuo_results``."""
    env = os.environ.get(ENV_RESULTS_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    if output_path:
        base = Path(output_path).expanduser()
        return base.parent if base.suffix == ".json" else base
    return Path.cwd() / DEFAULT_RESULTS_DIR


# ---------------------------------------------------------------------------------------- writing


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` so that a reader sees the old file or the new one, never part of one
    (temporary file + rename in the same folder; the folder is made when missing). No fsync: the
    judge cache, the main caller, treats a file lost in a crash as a miss."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:16]}.", suffix=".tmp", dir=path.parent)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:16]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_json_atomic(path, payload) -> Path:
    """Write a JSON file atomically (see :func:`write_bytes_atomic`)."""
    return write_bytes_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8"))


def write_result(result: dict, path) -> Path:
    """Write a SIUO result file; then, if the result says it is not valid, raise
    :class:`SIUOInvalidResult` naming the file and the reasons (the file stays,
    for inspection)."""
    path = write_json_atomic(path, result)
    check_valid(result, path)
    return path
