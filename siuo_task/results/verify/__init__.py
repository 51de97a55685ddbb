"""``siuo verify``: recompute every number of a SIUO result file from its own raw per-item records
with the scorer's own functions (pure, no harness imports, no judge call).

What "verified" means (PROTOCOL.md, "Verified results"):

- generation (``siuo_gen``, ``siuo_gen_vote3``): the stored answers and raw judge replies go through
  :func:`scoring.assemble_gen` (per item :func:`scoring.gen_item`, validity
  :func:`scoring.gen_validity` under the error limit the result records), and every stored vote,
  verdict, error, count, rate, interval, per-category row and the validity must equal what that
  gives; the task must be the one the answers per item give;
- MCQA: the stored responses go through :func:`scoring.score_mcqa` with the recorded policy and the
  answer key of the data (the pinned key's SHA-256 without the data);
- the file records the pinned dataset revision (or a local copy), the pinned prompt hashes, the
  judge, its decoding and its error limit and that it is not the dry-run stand-in (generation), the
  model's decoding (harness runs), covers SIUO's 167 items once each with the right categories,
  and is not marked invalid.

Every difference is a :class:`Mismatch` (field path, stored value, recomputed or expected value);
a file whose fields have the wrong type is ``malformed`` (nothing recomputed). Modules: ``model``
(mismatches, reports), ``facts`` (pinned ids and key), ``provenance``, ``items`` (item set, answer
key, submissions), ``recompute`` (through the scorer) and ``format`` (labels and text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from siuo_task.core.schema import GEN_SETTING, MCQA_SETTING, MCQA_TASK
from siuo_task.results.shape import result_problems
from siuo_task.results.verify import recompute
from siuo_task.results.verify.facts import (  # noqa: F401 (re-exported)
    HARNESS_NAMES,
    ITEM_ID_RANGES,
    MCQA_KEY_SHA256,
    SIUO_CATEGORY_OF,
    pinned_items,
)
from siuo_task.results.verify.format import REFUSING_KINDS, format_report, is_incomplete, label_of, refusing  # noqa: F401
from siuo_task.results.verify.items import check_data, check_item_set, is_official_submission, mcqa_key, verify_submission
from siuo_task.results.verify.model import (  # noqa: F401 (re-exported)
    MALFORMED,
    STAND_IN,
    STAND_IN_LABEL,
    Checker,
    Mismatch,
    VerifyReport,
    malformed,
    mismatch_kind,
    same,
)
from siuo_task.results.verify.provenance import check_provenance, recorded_limit, stand_in_judge  # noqa: F401

# The parts of a result that hold numbers derived from the per-item records.
NUMBER_SECTIONS = ("metrics", "ci95", "counts", "judge_errors", "by_category")


def verify_result(result: Any, items: Sequence[Mapping] | None = None, *, source: str = "<result>") -> VerifyReport:
    """Recompute and check one SIUO result (a dict as ``siuo score`` or the harness writes it, or an
    official submission list as ``siuo export`` writes it). ``items``: the release items of that
    setting (from ``data.load_items``): ids, categories and the MCQA answer key then come from them."""
    if isinstance(result, list) and is_official_submission(result):
        return verify_submission(result, items, source=source)
    task = result.get("task") if isinstance(result, Mapping) else None
    problems = result_problems(result)
    if isinstance(result, list):
        problems = [
            (
                "",
                "a SIUO result (an object with task, metrics, items, provenance) or an official submission "
                "(a list of items with question_id and responses or response_mcqa)",
            )
        ]
    if problems:
        report = VerifyReport(source, task if isinstance(task, str) else None, MALFORMED)
        report.mismatches = [malformed(path, expected) for path, expected in problems]
        return report
    if result.get("headline_only"):
        report = VerifyReport(source, task, "headline_only")
        report.mismatches.append(Mismatch("items", None, "per-item records", "headline numbers only (no per-item file): not verifiable"))
        return report
    report = VerifyReport(source, task, "result")
    check = Checker(report)
    if not result["items"]:
        check.fail("items", [], "per-item records", "no per-item records: nothing can be recomputed")
        return report
    setting = MCQA_SETTING if task == MCQA_TASK else GEN_SETTING
    check_provenance(result, setting, check)
    check_data(items, setting, check)
    truth = [dict(item) for item in items] if items is not None else pinned_items()
    kept = check_item_set(result["items"], truth, "the data" if items is not None else "SIUO's pinned ids", check)
    if setting == MCQA_SETTING:
        key = mcqa_key(kept, items, check)
        for item in truth:
            item["correct_option"] = key.get(item["question_id"])
        policy = recompute.mcqa_policy(result, check)
        if policy is not None:
            again = recompute.recompute_mcqa(kept, truth, policy)
            recompute.compare_mcqa(result, kept, again, check)
            recompute.check_missing(result, again["missing_question_ids"], check)
    else:
        limit = recorded_limit(result, check)
        recompute.check_task(result, kept, check)
        again = recompute.recompute_gen(result, kept, truth, limit)
        recompute.compare_gen(result, kept, again, limit, check)
        recompute.check_missing(result, again["missing_question_ids"], check)
    unchecked = [path for path in _number_paths(result, NUMBER_SECTIONS) if path not in check.checked]
    if unchecked:
        check.note(f"number(s) this verifier does not know how to recompute (not checked): {', '.join(unchecked[:20])}")
    return report


def _number_paths(result: Mapping, sections: Sequence[str]) -> list:
    """Dotted paths of the numeric leaves (or lists of numbers) under ``sections``."""
    out = []

    def walk(node, path):
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif node is not None:  # a number or an interval: the shape allows nothing else here
            out.append(path)

    for section in sections:
        if isinstance(result.get(section), Mapping):
            walk(result[section], section)
    return out


def verify_headline(harness_metrics: Mapping, result: Mapping, task: str, *, source: str = "harness results") -> list:
    """Mismatches between a harness's headline numbers for ``task`` (``{"safe": 57.14, ...}``) and the
    SIUO result's own numbers (which :func:`verify_result` checks against the per-item records)."""
    found = []
    for name, value in (result.get("metrics") or {}).items():
        if name in harness_metrics and not same(harness_metrics[name], value):
            found.append(Mismatch(f"{source}: results.{task}.{name}", harness_metrics[name], value, "the harness's headline number"))
    return found


def verification_label(result: Any, items: Sequence[Mapping] | None = None) -> tuple:
    """``(ok, short label, mismatches)`` for a report cell, e.g. ``(True, "verified", [])`` or
    ``(False, "NOT VERIFIED: 1 number differs (metrics.safe)", [Mismatch, ...])``."""
    report = verify_result(result, items)
    return report.ok, label_of(report), list(report.mismatches)


__all__ = [
    "ITEM_ID_RANGES",
    "MCQA_KEY_SHA256",
    "Mismatch",
    "STAND_IN_LABEL",
    "VerifyReport",
    "format_report",
    "is_official_submission",
    "mismatch_kind",
    "refusing",
    "same",
    "stand_in_judge",
    "verification_label",
    "verify_headline",
    "verify_result",
    "verify_submission",
]
