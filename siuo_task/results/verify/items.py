"""Which items a result holds: SIUO's ids and categories, once each, all of them, and the MCQA
answer key (from the data, or the pinned key's SHA-256); and official submission files (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from siuo_task.core import scoring
from siuo_task.core.data import N_ITEMS
from siuo_task.core.schema import GEN_SETTING, GEN_TASK, MCQA_SETTING, MCQA_TASK
from siuo_task.results.shape import submission_problems
from siuo_task.results.verify.facts import MCQA_KEY_SHA256, RELEASE_FIELDS, answer_key_sha256, data_differences, pinned_items
from siuo_task.results.verify.model import MALFORMED, Checker, VerifyReport, malformed

NO_KEY = "an incomplete MCQA result's correct options can only be checked against the data: give --data-dir or set SIUO_DATA_DIR"


def check_data(items: Sequence[Mapping] | None, setting: str, check: Checker) -> None:
    """The data given must be SIUO's release (ids, categories, MCQA answer key)."""
    if items is None:
        return
    for path, stored, expected, note in data_differences(items, setting):
        check.fail(path, stored, expected, note)


def check_item_set(records: Sequence[Mapping], truth: Sequence[Mapping], origin: str, check: Checker) -> dict:
    """Ids (SIUO's, once each), categories (where a record gives one: a submission may not) and
    completeness; returns ``{question_id: record}`` of the records that can be recomputed (SIUO's
    ids, the first record of each)."""
    truth_category = {item["question_id"]: item["category"] for item in truth}
    kept: dict = {}
    foreign, duplicated = [], []
    for record in records:
        qid = record["question_id"]
        if qid not in truth_category:
            foreign.append(qid)
        elif qid in kept:
            duplicated.append(qid)
        else:
            kept[qid] = record
    if foreign:
        check.fail("items", foreign[:20], f"question_ids of {origin}", f"{len(foreign)} question_id(s) not in SIUO: {foreign[:20]}")
    for qid in dict.fromkeys(duplicated):
        check.fail(f"items[question_id={qid}]", f"{1 + duplicated.count(qid)} records", "one record", "duplicated question_id")
    wrong = [
        (qid, r["category"], truth_category[qid]) for qid, r in kept.items() if "category" in r and r["category"] != truth_category[qid]
    ]
    for qid, category, expected in wrong:
        check.fail(f"items[question_id={qid}].category", category, expected, f"category per {origin}")
    missing = [qid for qid in truth_category if qid not in kept]
    if missing:
        more = " ..." if len(missing) > 30 else ""
        check.fail(
            "items",
            len(kept),
            len(truth_category),
            f"incomplete: {len(missing)} SIUO item(s) have no answer, question_id(s) {missing[:30]}{more}",
        )
    elif not foreign and not duplicated and not wrong:
        check.agree(f"items: SIUO's {len(truth_category)} question_ids and categories ({origin})")
    return kept


def mcqa_key(kept: Mapping[int, Mapping], items: Sequence[Mapping] | None, check: Checker) -> dict:
    """``{question_id: correct_option}`` to score with: the data's when given; without the data the
    result's own key, once its SHA-256 shows it is SIUO's (a complete result); otherwise that key is
    used to recompute but named as unchecked (an edited key fails whatever the item count)."""
    if items is not None:
        return {item["question_id"]: item["correct_option"] for item in items}
    stored = {qid: record.get("correct_option") for qid, record in kept.items()}
    if len(stored) != N_ITEMS:
        check.fail("items[].correct_option", f"{len(stored)} of {N_ITEMS} items", "the data's answer key", f"not checked: {NO_KEY}")
    elif answer_key_sha256(list(stored.items())) == MCQA_KEY_SHA256:
        check.agree("items[].correct_option: the pinned SIUO answer key")
    else:
        check.fail(
            "items[].correct_option",
            f"answer key sha256 {answer_key_sha256(list(stored.items()))[:16]}...",
            f"{MCQA_KEY_SHA256[:16]}...",
            "the correct options differ from SIUO's answer key (give --data-dir to name the items)",
        )
    return stored


# ----------------------------------------------------------------------------------- submissions


def is_official_submission(payload) -> bool:
    return (
        isinstance(payload, list)
        and bool(payload)
        and all(isinstance(r, Mapping) and "question_id" in r for r in payload)
        and (all("responses" in r for r in payload) or all("response_mcqa" in r for r in payload))
    )


def verify_submission(rows, items: Sequence[Mapping] | None = None, *, source: str = "<submission>") -> VerifyReport:
    """An official submission file: ids, categories, completeness, answers (texts or null; a
    generation file's answers per item must fit a task), and with the data its release fields."""
    setting = (
        GEN_SETTING if isinstance(rows, list) and rows and all(isinstance(r, Mapping) and "responses" in r for r in rows) else MCQA_SETTING
    )
    task = GEN_TASK if setting == GEN_SETTING else MCQA_TASK
    problems = submission_problems(rows)
    if problems:
        report = VerifyReport(source, task, MALFORMED)
        for path, expected in problems:
            report.mismatches.append(malformed(path, expected))
        return report
    report = VerifyReport(source, task, "official_submission")
    check = Checker(report)
    check.note("an official submission file carries answers, no numbers: score it with `siuo score` and verify that result")
    truth = items if items is not None else pinned_items()
    check_data(items, setting, check)
    kept = check_item_set(rows, truth, "the data" if items is not None else "SIUO's pinned ids", check)
    report.items_checked = len(kept)
    if setting == GEN_SETTING and kept:
        try:
            answers = {q: [r["responses"]] if isinstance(r["responses"], str) else r["responses"] for q, r in kept.items()}
            check.note(f"scores as {scoring.gen_task_for(answers)} (answers per item)")
        except scoring.SIUOScoringError as exc:
            check.fail("responses", "different numbers of answers per item", "the answers per item of one task", str(exc))
    if items is not None:
        truth_by_id = {item["question_id"]: item for item in items}
        before = len(report.mismatches)
        for qid, row in kept.items():
            for name in RELEASE_FIELDS[setting]:
                if name in row:
                    check.value(f"items[question_id={qid}].{name}", row[name], truth_by_id[qid][name], "the data's release field")
        if len(report.mismatches) == before:
            check.agree("release fields equal the data's")
    elif setting == MCQA_SETTING and all("correct_option" in r for r in kept.values()):
        if len(kept) == N_ITEMS:
            mcqa_key(kept, None, check)
        else:
            check.note(f"correct_option fields not checked: {NO_KEY}")
    return report
