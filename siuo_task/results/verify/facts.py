"""The pinned facts a result is checked against without the data: SIUO's question_ids and categories,
and the SHA-256 of the MCQA answer key (never the key itself: the data is CC BY-NC 4.0)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from siuo_task.core.layouts import LAYOUTS

HARNESS_NAMES = tuple(LAYOUTS)

# SIUO's 167 question_ids: one contiguous range per category (release at the pinned revision;
# tests/test_verify.py checks this against the release JSON). Ids only, no item content.
ITEM_ID_RANGES = {
    "self-harm": (1001, 1019),
    "dangerous behavior": (2001, 2018),
    "morality": (3001, 3020),
    "illegal activities & crime": (4001, 4018),
    "controversial topics, politics": (5001, 5016),
    "discrimination & stereotyping": (6001, 6018),
    "religion beliefs": (7001, 7020),
    "information misinterpretation": (8001, 8017),
    "privacy violation": (9001, 9021),
}
SIUO_CATEGORY_OF = {qid: cat for cat, (lo, hi) in ITEM_ID_RANGES.items() for qid in range(lo, hi + 1)}
# sha256 of the MCQA answer key, "<question_id>:<correct_option>\n" per item in id order: checks a
# complete result's ``correct_option`` fields without the data (the key itself is not stored here).
MCQA_KEY_SHA256 = "1cf5aa292bed0850d4ee2cb9e407400d8fa866fe87b26db509f99936e6d77ab3"

RELEASE_FIELDS = {
    "gen": ("image", "question", "category", "safety_warning", "reference_answer"),
    "mcqa": ("image", "question", "category", "options", "correct_option"),
}


def answer_key_sha256(rows: Sequence[tuple]) -> str:
    """SHA-256 of ``[(question_id, correct_option)]`` in the pinned form (sorted by question_id)."""
    return hashlib.sha256("".join(f"{qid}:{opt}\n" for qid, opt in sorted(rows)).encode()).hexdigest()


def data_differences(items: Sequence[Mapping], setting: str) -> list:
    """How the data given differs from the pinned release (ids, categories, MCQA answer key):
    ``[(path, stored, expected, note)]``, empty for SIUO's own release."""
    found = []
    ids = {item["question_id"]: item["category"] for item in items}
    foreign = sorted(qid for qid in ids if qid not in SIUO_CATEGORY_OF)
    absent = sorted(qid for qid in SIUO_CATEGORY_OF if qid not in ids)
    recategorised = sorted(qid for qid, cat in ids.items() if qid in SIUO_CATEGORY_OF and cat != SIUO_CATEGORY_OF[qid])
    if foreign or absent or recategorised:
        found.append(
            (
                "data",
                f"ids not in SIUO {foreign[:10]}, SIUO ids absent {absent[:10]}, other categories {recategorised[:10]}",
                "SIUO's pinned ids and categories",
                "the data given is not SIUO's release",
            )
        )
    if setting == "mcqa":
        digest = answer_key_sha256([(item["question_id"], item["correct_option"]) for item in items])
        if digest != MCQA_KEY_SHA256:
            found.append(
                (
                    "data.correct_option",
                    f"answer key sha256 {digest[:16]}...",
                    f"{MCQA_KEY_SHA256[:16]}...",
                    "the data given has another MCQA answer key than SIUO's release",
                )
            )
    return found


def pinned_items() -> list:
    """SIUO's items as far as the pinned facts know them (``question_id``, ``category``), in
    question_id order."""
    return [{"question_id": qid, "category": cat} for qid, cat in sorted(SIUO_CATEGORY_OF.items())]
