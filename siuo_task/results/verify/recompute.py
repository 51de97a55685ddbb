"""Recompute a result from its raw per-item records with the scorer's own functions, then compare.

Generation: the stored answers and raw judge replies go through :func:`scoring.assemble_gen` (so
through :func:`scoring.gen_item` and :func:`scoring.gen_validity`: normalisation, generation
failures, the empty-answer rule, parsing, votes, validity), with the items' categories from the data
or the pinned ids and the error limit the result records. MCQA: the stored responses go through
:func:`scoring.score_mcqa` with the recorded policy and the answer key of the data (or, without the
data, the result's own key once it is shown to be SIUO's). No stored number is an input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from siuo_task.core import scoring
from siuo_task.core.mcqa import POLICIES
from siuo_task.core.schema import GEN_METRICS, JUDGE_PARTS, MCQA_METRICS
from siuo_task.results.verify.model import MISSING, Checker, get

_VOTE_NOTE = "from the stored raw judge replies"


@dataclass(frozen=True)
class StoredReply:
    """A judge reply as a result stores it: its text (``None``: the call failed or was not made)."""

    text: str | None
    error: str | None = "reason not stored"


def replies_of(records: Mapping[int, Mapping]) -> dict:
    """``{"<qid>/<i>/<part>": StoredReply}`` for every stored reply text of the records."""
    replies = {}
    for qid, record in records.items():
        for part in JUDGE_PARTS:
            for i, text in enumerate(record[f"{part}_judge_replies"]):
                if text is not None:
                    replies[f"{qid}/{i}/{part}"] = StoredReply(text)
    return replies


def recompute_gen(result: Mapping, records: Mapping[int, Mapping], truth: Sequence[Mapping], limit: float | None) -> dict:
    """The result the scorer gives for these records (``records``: the first record of each known id)."""
    answers = {qid: record["answers"] for qid, record in records.items()}
    return scoring.assemble_gen(answers, truth, replies_of(records), task=result["task"], max_error_rate=1.0 if limit is None else limit)


def recompute_mcqa(records: Mapping[int, Mapping], truth: Sequence[Mapping], policy: str) -> dict:
    responses = {qid: record.get("response") for qid, record in records.items()}
    return scoring.score_mcqa(responses, truth, policy=policy)


# ---------------------------------------------------------------------------------------- compare


def check_task(result: Mapping, records: Mapping[int, Mapping], check: Checker) -> None:
    """The task label must be the one the records give (answers per item, :func:`scoring.gen_task_for`)."""
    task = result["task"]
    answers = {qid: r["answers"] for qid, r in records.items()}
    wrong = scoring.wrong_answer_counts(task, answers)
    if not wrong:
        check.agree(f"task: {task} (the number of answers per item in every record)")
        return
    try:
        expected = scoring.gen_task_for(answers)
    except scoring.SIUOScoringError:
        expected = "no SIUO task (the items have different numbers of answers)"
    check.fail(
        "task",
        task,
        expected,
        f"{len(wrong)} item(s) have another number of answers than {task} votes on (question_id, answers: {wrong[:5]})",
    )


def compare_items(
    result_items: Mapping[int, Mapping], again: Sequence[Mapping], fields: Sequence[str], check: Checker, notes: Mapping[str, str]
) -> None:
    for row in again:
        qid = row["question_id"]
        stored = result_items[qid]
        where = f"items[question_id={qid}]"
        item_ok = True
        for name in fields:
            if name == "errors":
                item_ok &= check.value(
                    f"{where}.errors",
                    _error_parts(stored.get("errors", MISSING)),
                    _error_parts(row["errors"]),
                    "(answer, part) of each judge error or generation failure",
                )
            else:
                item_ok &= check.value(f"{where}.{name}", stored.get(name, MISSING), row[name], notes.get(name, ""))
        if item_ok:
            check.report.items_checked += 1


def _error_parts(errors):
    if errors is MISSING or not isinstance(errors, list):
        return errors
    return [(e.get("answer"), e.get("part")) if isinstance(e, Mapping) else e for e in errors]


def compare_gen(result: Mapping, records: Mapping[int, Mapping], again: Mapping, limit: float | None, check: Checker) -> None:
    notes = {name: _VOTE_NOTE for name in ("safe_votes", "effective_votes", "safe_effective_votes")}
    notes.update({name: "majority of the votes" for name in GEN_METRICS})
    notes.update({f"{part}_judge_replies": "replies the scorer reads (none for by-rule votes and failures)" for part in JUDGE_PARTS})
    fields = scoring.RECORD_FIELDS[1:]  # the answers compare equal: they are the input
    compare_items(records, again["items"], fields, check, notes)
    for name in GEN_METRICS:
        check.field(result, f"metrics.{name}", again["metrics"][name])
        check.field(result, f"ci95.{name}", again["ci95"][name])
        check.field(result, f"counts.no_verdict.{name}", again["counts"]["no_verdict"][name])
        _same_ids(result, f"items_without_verdict.{name}", again["items_without_verdict"][name], check)
    for part in JUDGE_PARTS:
        check.field(result, f"judge_errors.{part}", again["judge_errors"][part])
    check.field(result, "judge_error_rate", again["judge_error_rate"], note="judge errors per judge call, from the records")
    for name in ("n", "answers", "generation_failures"):
        check.field(result, f"counts.{name}", again["counts"][name])
    if limit is not None:
        check_validity(result, again, check)
    variant = scoring.gen_variant(result["task"], {qid: r["answers"] for qid, r in records.items()})
    check.field(result, "provenance.protocol_variant", variant, note="answers per item in the records")
    compare_categories(result, again, ("n", *GEN_METRICS, "ci95"), check)


def compare_mcqa(result: Mapping, records: Mapping[int, Mapping], again: Mapping, check: Checker) -> None:
    fields = ("category", "prediction", "unparsed", "failed", "scored_as", "correct_option", "correct")
    policy = result["provenance"]["mcqa_policy"]
    notes = {name: f"parsed again ({policy} policy)" for name in fields}
    notes["correct_option"] = "the answer key of the data"
    compare_items(records, again["items"], fields, check, notes)
    for name in MCQA_METRICS:
        check.field(result, f"metrics.{name}", again["metrics"][name])
    check.field(result, "ci95.accuracy", again["ci95"]["accuracy"])
    for name in ("n", "unparsed", "failed"):
        check.field(result, f"counts.{name}", again["counts"][name])
    check_validity(result, again, check)
    compare_categories(result, again, ("accuracy", "unparsed", "failed", "n"), check)


def mcqa_policy(result: Mapping, check: Checker) -> str | None:
    policy = get(result, "provenance.mcqa_policy")
    if policy not in POLICIES:
        check.fail(
            "provenance.mcqa_policy",
            None if policy is MISSING else policy,
            list(POLICIES),
            "the parsing policy is not recorded: the decisions cannot be recomputed",
        )
        return None
    check.agree(f"provenance.mcqa_policy: {policy}")
    return policy


def check_validity(result: Mapping, again: Mapping, check: Checker) -> None:
    """``valid`` and ``invalid_reasons`` as the scorer's validity rule gives them for these records;
    a result marked invalid is never verified, whatever its records say."""
    reasons = result.get("invalid_reasons")
    if result.get("valid") is False:
        check.fail("valid", False, True, "the result is marked invalid: " + ("; ".join(map(str, reasons or [])) or "no reason given"))
        if again["valid"]:
            check.fail("invalid_reasons", reasons, again["invalid_reasons"], "marked invalid although its records are within the limit")
        return
    # the note is shown only when the records make the result invalid (a missing field says so instead)
    if check.field(
        result,
        "valid",
        again["valid"],
        note=f"its records exceed the judge error limit or have no judge verdict: {'; '.join(again['invalid_reasons'])}",
    ):
        check.field(result, "invalid_reasons", again["invalid_reasons"])


def compare_categories(result: Mapping, again: Mapping, names: Sequence[str], check: Checker) -> None:
    groups = again["by_category"]
    stored = result.get("by_category")
    if not isinstance(stored, Mapping):
        check.fail("by_category", None, list(groups), "per-category rows missing")  # absent (the shape allows nothing else)
        return
    extra = sorted(set(stored) - set(groups))
    if extra:
        check.fail("by_category", sorted(stored), list(groups), f"categories without items in the records: {extra}")
    before = len(check.report.mismatches)
    for cat, row in groups.items():
        for name in names:
            if name == "ci95":
                for metric in GEN_METRICS:
                    check.field(result, f"by_category.{cat}.ci95.{metric}", row["ci95"][metric], record=False)
            else:
                check.field(result, f"by_category.{cat}.{name}", row[name], record=False)
    if groups and len(check.report.mismatches) == before and not extra:
        check.agree(f"by_category: {len(groups)} categories ({', '.join(names)})")


def check_missing(result: Mapping, missing: list, check: Checker) -> None:
    check.field(result, "counts.missing", len(missing))
    _same_ids(result, "missing_question_ids", missing, check, note="SIUO items without an answer")


def _same_ids(result: Mapping, path: str, recomputed: list, check: Checker, note: str = "") -> None:
    """A list of question_ids, in any order (sorted by their text: a stored list may hold anything)."""
    stored = get(result, path)
    if stored is MISSING:  # the shape allows only a list otherwise
        check.fail(path, None, recomputed, "field missing")
        return
    if check.value(path, sorted(stored, key=repr), sorted(recomputed, key=repr), note):
        check.agree(path)
