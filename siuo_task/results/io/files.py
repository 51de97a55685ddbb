"""Reading one file: JSON with every failure named, the shape checks, model names and answers."""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path

from siuo_task.core import layouts, schema
from siuo_task.core.schema import GEN_TASKS, TASKS
from siuo_task.results.shape import describe, harness_results_problems, result_problems

_MODEL_ARG_KEYS = ("model_version", "pretrained", "model", "model_name", "model_id")


class ReportInputError(ValueError):
    """A result file or folder that cannot be read; the message names the path at fault."""


def _unreadable(path, exc: BaseException) -> ReportInputError:
    if isinstance(exc, FileNotFoundError):
        return ReportInputError(f"{path}: file not found")
    if isinstance(exc, IsADirectoryError):
        return ReportInputError(f"{path}: a folder, not a file")
    if isinstance(exc, OSError):
        return ReportInputError(f"{path}: cannot be read ({exc.strerror or exc})")
    if isinstance(exc, UnicodeDecodeError):
        return ReportInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    if isinstance(exc, RecursionError):
        return ReportInputError(f"{path}: nested too deeply to be a SIUO file")
    return ReportInputError(f"{path}: not valid JSON ({exc})")


_READ_ERRORS = (OSError, UnicodeDecodeError, RecursionError, ValueError)  # json.JSONDecodeError is a ValueError


def read_json(path):
    """The JSON value of a file; anything that can't be read (missing, a folder, a loop of links, not
    UTF-8, not JSON, nested too deeply) raises :class:`ReportInputError` naming the file."""
    if Path(path).is_dir():
        raise ReportInputError(f"{path}: a folder, not a file")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None


def read_results_file(path) -> dict:
    """A harness results file as a dict: plain JSON, or through the reader its harness's layout row
    names (inspect's logs: :mod:`siuo_task.results.io.inspect_logs`); read failures name the file."""
    reader = layouts.reader_of(Path(path))
    if reader is None:
        return read_json(path)
    import importlib

    module, _, function = reader.partition(":")
    try:
        return getattr(importlib.import_module(module), function)(Path(path))
    except FileNotFoundError:
        raise ReportInputError(f"{path}: file not found") from None
    except _READ_ERRORS as exc:  # the reader's own error names the file and the fix
        raise ReportInputError(str(exc) if isinstance(exc, ValueError) else f"{path}: cannot be read ({exc})") from None


def read_jsonl(path) -> list:
    rows = []
    lineno = 0
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):  # noqa: B007 - lineno names the bad line in the error below
                if line.strip():
                    rows.append(json.loads(line))
    except _READ_ERRORS as exc:
        error = _unreadable(path, exc)
        raise ReportInputError(f"{error} (line {lineno})" if lineno else str(error)) from None
    return rows


# ---------------------------------------------------------------------------------------- kinds


def looks_like_siuo_result(payload) -> bool:
    """A JSON object that says it is a SIUO task's result (its shape is checked by :func:`checked_result`)."""
    return isinstance(payload, dict) and isinstance(payload.get("task"), str) and payload["task"] in TASKS


def is_siuo_result(payload) -> bool:
    """A SIUO result of the right shape."""
    return looks_like_siuo_result(payload) and not result_problems(payload)


def checked_result(path, payload) -> dict:
    """``payload`` when it is a SIUO result of the documented shape, else :class:`ReportInputError`
    naming the file and the fields at fault."""
    problems = result_problems(payload)
    if problems:
        raise ReportInputError(f"{path}: malformed SIUO result: {describe(problems)}")
    return payload


def is_harness_results(payload) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("results"), dict) and "config" in payload


def checked_harness_results(path, payload) -> dict:
    problems = harness_results_problems(payload)
    if problems:
        raise ReportInputError(f"{path}: malformed harness results file: {describe(problems)}")
    return payload


def is_gen(result: dict) -> bool:
    return result.get("task") in GEN_TASKS


# ---------------------------------------------------------------------------------------- names


def parse_model_args(model_args) -> dict:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}`` (dicts pass through; anything else -> ``{}``)."""
    if isinstance(model_args, dict):
        return {str(k): str(v) for k, v in model_args.items()}
    if not isinstance(model_args, str):
        return {}
    out = {}
    for part in model_args.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def same_model_args(a, b) -> bool:
    """Equal model arguments, ignoring the values of secret-looking keys (redacted in SIUO files)."""
    pa, pb = parse_model_args(a), parse_model_args(b)
    if set(pa) != set(pb):
        return False
    return all(schema.is_secret_key(k) or pa[k] == pb[k] for k in pa)


def model_name_from_args(model_args, *, full: bool = False) -> str | None:
    """The model's name from its arguments; ``pretrained=org/Model`` gives ``Model`` (``org/Model`` with ``full``)."""
    args = parse_model_args(model_args)
    for key in _MODEL_ARG_KEYS:
        if args.get(key):
            value = args[key]
            return value.rstrip("/").split("/")[-1] if key == "pretrained" and "/" in value and not full else value
    return None


def model_name_for(result: dict, path: Path) -> str:
    """The model a SIUO result file belongs to, from its provenance, else from file names."""
    harness = result.get("provenance", {}).get("harness") or {}
    name = model_name_from_args(harness.get("model_args"))
    if name:
        return name
    source = harness.get("input")
    stem = Path(source).stem if isinstance(source, str) else path.stem
    match = re.match(r"^siuo_(?:gen|mcqa)(?:_vote3)?[-_](.+?)(?:-gpteval.*)?$", stem)
    if match:
        return match.group(1)
    model = harness.get("model")
    return model if isinstance(model, str) and model else stem


def created(result: dict) -> _dt.datetime | None:
    value = result.get("provenance", {}).get("created")
    try:
        stamp = _dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=_dt.timezone.utc)


# -------------------------------------------------------------------------------------- numbers


def headline_metrics(task_results: dict) -> dict:
    """``{"acc,none": 0.4, "acc_stderr,none": ...}`` -> ``{"acc": 0.4}`` (numbers only, no stderr)."""
    out = {}
    for key, value in task_results.items():
        if key == "alias" or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        metric, _, filt = key.partition(",")
        if "_stderr" in metric:
            continue
        out[metric if filt in ("", "none") else key] = value
    return out


def answers_by_qid(result: dict) -> dict:
    """``{question_id: answers}`` from a SIUO result (lists of answers for gen, one answer for MCQA)."""
    if is_gen(result):
        return {item["question_id"]: list(item.get("answers") or []) for item in result.get("items", [])}
    return {item["question_id"]: item.get("response") for item in result.get("items", [])}


def _text_or_null(value) -> bool:
    return value is None or isinstance(value, str)


def answers_from_samples(path: Path) -> dict:
    """``{question_id: answers}`` from a harness's logged samples (``*.jsonl``) of a SIUO task."""
    out = {}
    for index, row in enumerate(read_jsonl(path)):
        record = None
        if isinstance(row, dict):
            record = next(
                (v for v in row.values() if isinstance(v, dict) and "question_id" in v and ("answers" in v or "response" in v)), None
            )
        where = f"doc_id {row.get('doc_id')}" if isinstance(row, dict) else f"line {index + 1}"
        if record is None:
            raise ReportInputError(f"{path}: {where} has no SIUO record (question_id and answers)")
        qid, answers = record["question_id"], record.get("answers", record.get("response"))
        if not isinstance(qid, int) or isinstance(qid, bool):
            raise ReportInputError(f"{path}: {where}: question_id should be an integer, got {qid!r}")
        ok = isinstance(answers, list) and all(_text_or_null(a) for a in answers) if "answers" in record else _text_or_null(answers)
        if not ok:
            raise ReportInputError(f"{path}: {where}: the answers should be texts or null, got {answers!r:.80}")
        out[qid] = list(answers) if "answers" in record else answers
    return out
