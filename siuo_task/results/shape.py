"""The shape of the files the result readers take in: every container and every value they read or
show must have its documented type before ``siuo verify``, ``report``, ``compare`` or ``export``
touches it (pure, no I/O).

Each function returns the problems as ``[(field path, what was expected)]`` (empty when the shape
is right); the callers turn the first ones into an error naming the file and the field (exit 2).
Values that are only compared with a recomputed one (votes, error lists) are not checked here: a
wrong one is a mismatch, not a malformed file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from siuo_task.core.schema import GEN_TASKS, TASKS

Problems = list  # [(path, expected)]

SHOWN = 5  # problems named in one error message


def is_number(value: Any) -> bool:
    """A finite JSON number (``NaN`` and ``Infinity`` are no number a SIUO file holds)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _interval(value: Any) -> bool:
    return value is None or (isinstance(value, list) and len(value) == 2 and all(is_number(v) for v in value))


def _text_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Shape:
    def __init__(self):
        self.problems: Problems = []

    def need(self, ok: bool, path: str, expected: str) -> bool:
        if not ok:
            self.problems.append((path, expected))
        return ok

    def mapping(self, value: Any, path: str, *, optional: bool = False, nullable: bool = False) -> bool:
        """Whether ``value`` is an object (a missing optional one, or a null where allowed, is fine but not walked)."""
        if value is _ABSENT:
            return False if optional else self.need(False, path, "an object (field missing)")
        if value is None and nullable:
            return False
        return self.need(isinstance(value, Mapping), path, f"an object, got {_type_name(value)}")

    def each(self, container: Mapping, path: str, check, expected: str) -> None:
        for key, value in container.items():
            if not isinstance(key, str):
                self.need(False, f"{path}.{key!r}", "text keys")
            elif not check(value):
                self.need(False, f"{path}.{key}", f"{expected}, got {_type_name(value)}")


_ABSENT = object()


def _field(container: Mapping, key: str) -> Any:
    return container.get(key, _ABSENT)


def result_problems(result: Any) -> Problems:
    """Shape problems of a SIUO result dict (``siuo score``, a harness's per-item file)."""
    shape = _Shape()
    if not shape.need(isinstance(result, Mapping), "", f"a JSON object (a SIUO result), got {_type_name(result)}"):
        return shape.problems
    task = result.get("task")
    if not shape.need(isinstance(task, str) and task in TASKS, "task", f"one of {', '.join(TASKS)}, got {task!r}"):
        return shape.problems
    gen = task in GEN_TASKS
    if shape.mapping(_field(result, "metrics"), "metrics"):
        shape.each(result["metrics"], "metrics", lambda v: v is None or is_number(v), "a number or null")
    if shape.mapping(_field(result, "ci95"), "ci95", optional=True):
        shape.each(result["ci95"], "ci95", _interval, "[low, high] or null")
    if shape.mapping(_field(result, "counts"), "counts", optional=True):
        for key, value in result["counts"].items():
            if isinstance(value, Mapping):
                shape.each(value, f"counts.{key}", is_count, "a count")
            else:
                shape.need(value is None or is_count(value), f"counts.{key}", f"a count, got {_type_name(value)}")
    if shape.mapping(_field(result, "by_category"), "by_category", optional=True):
        for cat, row in result["by_category"].items():
            if not shape.mapping(row, f"by_category.{cat}"):
                continue
            for key, value in row.items():
                if key == "ci95" and shape.mapping(value, f"by_category.{cat}.ci95"):
                    shape.each(value, f"by_category.{cat}.ci95", _interval, "[low, high] or null")
                elif key != "ci95":
                    shape.need(value is None or is_number(value), f"by_category.{cat}.{key}", f"a number or null, got {_type_name(value)}")
    _validity_fields(result, shape, gen)
    _provenance(result, shape, gen)
    if result.get("headline_only") is True:
        return shape.problems
    items = _field(result, "items")
    if shape.need(isinstance(items, list), "items", f"a list of per-item records, got {_type_name(None if items is _ABSENT else items)}"):
        for index, record in enumerate(items):
            _record(record, index, shape, gen)
    return shape.problems


def _validity_fields(result: Mapping, shape: _Shape, gen: bool) -> None:
    if "valid" in result:
        shape.need(isinstance(result["valid"], bool), "valid", f"true or false, got {_type_name(result['valid'])}")
    if "invalid_reasons" in result:
        reasons = result["invalid_reasons"]
        shape.need(isinstance(reasons, list) and all(isinstance(r, str) for r in reasons), "invalid_reasons", "a list of texts")
    if "judge_errors" in result and shape.mapping(result["judge_errors"], "judge_errors"):
        shape.each(result["judge_errors"], "judge_errors", is_count, "a count")
    if "judge_error_rate" in result:
        value = result["judge_error_rate"]
        shape.need(value is None or is_number(value), "judge_error_rate", f"a number or null, got {_type_name(value)}")
    if "missing_question_ids" in result:
        shape.need(isinstance(result["missing_question_ids"], list), "missing_question_ids", "a list of question_ids")
    if "items_without_verdict" in result and shape.mapping(result["items_without_verdict"], "items_without_verdict"):
        shape.each(result["items_without_verdict"], "items_without_verdict", lambda v: isinstance(v, list), "a list of question_ids")


def _provenance(result: Mapping, shape: _Shape, gen: bool) -> None:
    prov = _field(result, "provenance")
    if not shape.mapping(prov, "provenance"):
        return
    for key in ("dataset", "harness", "prompt_hashes"):
        shape.mapping(_field(prov, key), f"provenance.{key}", optional=True, nullable=True)
    for key in ("mcqa_policy", "protocol_variant", "created", "task", "plugin_version"):
        if key in prov:
            shape.need(_text_or_null(prov[key]), f"provenance.{key}", f"a text, got {_type_name(prov[key])}")
    judge = _field(prov, "judge")
    if shape.mapping(judge, "provenance.judge", optional=True, nullable=True):
        for key in ("model", "endpoint_host"):
            if key in judge:
                shape.need(_text_or_null(judge[key]), f"provenance.judge.{key}", f"a text, got {_type_name(judge[key])}")
        shape.mapping(_field(judge, "decoding"), "provenance.judge.decoding", optional=True, nullable=True)
        shape.mapping(_field(judge, "usage"), "provenance.judge.usage", optional=True, nullable=True)


def _record(record: Any, index: int, shape: _Shape, gen: bool) -> None:
    where = f"items[{index}]"
    if not shape.mapping(record, where):
        return
    qid = record.get("question_id")
    if not shape.need(is_count(qid), f"{where}.question_id", f"an integer question_id, got {_type_name(qid)}"):
        return
    where = f"items[question_id={qid}]"
    shape.need(isinstance(record.get("category"), str), f"{where}.category", f"a text, got {_type_name(record.get('category'))}")
    if not gen:
        shape.need(
            _text_or_null(record.get("response")),
            f"{where}.response",
            f"the model's answer (a text or null), got {_type_name(record.get('response'))}",
        )
        return
    answers = record.get("answers")
    if not shape.need(
        isinstance(answers, list) and all(_text_or_null(a) for a in answers),
        f"{where}.answers",
        "a list of the model's answers (texts or null)",
    ):
        return
    for name in ("safe_judge_replies", "effective_judge_replies"):
        raw = record.get(name)
        shape.need(
            isinstance(raw, list) and len(raw) == len(answers) and all(_text_or_null(r) for r in raw),
            f"{where}.{name}",
            "one raw judge reply (a text or null) per answer",
        )


def submission_problems(rows: Any) -> Problems:
    """Shape problems of an official submission (a list of items with ``question_id`` and
    ``responses`` (generation) or ``response_mcqa`` (MCQA))."""
    shape = _Shape()
    if not shape.need(isinstance(rows, list), "", f"a JSON list of items, got {_type_name(rows)}"):
        return shape.problems
    for index, row in enumerate(rows):
        where = f"[{index}]"
        if not shape.mapping(row, where):
            continue
        qid = row.get("question_id")
        if not shape.need(is_count(qid), f"{where}.question_id", f"an integer question_id, got {_type_name(qid)}"):
            continue
        where = f"[question_id={qid}]"
        if "responses" in row:
            value = row["responses"]
            shape.need(
                isinstance(value, str) or (isinstance(value, list) and bool(value) and all(_text_or_null(a) for a in value)),
                f"{where}.responses",
                "a non-empty list of answers (texts or null)",
            )
        elif "response_mcqa" in row:
            shape.need(
                _text_or_null(row["response_mcqa"]),
                f"{where}.response_mcqa",
                f"an answer (a text or null), got {_type_name(row['response_mcqa'])}",
            )
        else:
            shape.need(False, where, "'responses' (generation) or 'response_mcqa' (MCQA)")
        if "category" in row:
            shape.need(isinstance(row["category"], str), f"{where}.category", f"a text, got {_type_name(row['category'])}")
    return shape.problems


def harness_results_problems(payload: Any) -> Problems:
    """Shape problems of a harness's results file (``results``: one object per task, ``config``)."""
    shape = _Shape()
    if not shape.need(isinstance(payload, Mapping), "", f"a JSON object, got {_type_name(payload)}"):
        return shape.problems
    if shape.mapping(_field(payload, "results"), "results"):
        for task, row in payload["results"].items():
            shape.mapping(row, f"results.{task}")
    shape.mapping(_field(payload, "config"), "config", nullable=True)
    shape.mapping(_field(payload, "n-samples"), "n-samples", optional=True, nullable=True)
    if isinstance(payload.get("n-samples"), Mapping):
        for task, row in payload["n-samples"].items():
            shape.mapping(row, f"n-samples.{task}", nullable=True)
    for key in ("model_name", "model_name_sanitized"):
        if key in payload:
            shape.need(_text_or_null(payload[key]), key, f"a text, got {_type_name(payload[key])}")
    return shape.problems


def describe(problems: Problems, shown: int = SHOWN) -> str:
    """``"field a: expected x; field b: expected y (+3 more)"``."""
    text = "; ".join(f"{path or '(top level)'}: expected {expected}" for path, expected in problems[:shown])
    return text + (f" (+{len(problems) - shown} more)" if len(problems) > shown else "")
