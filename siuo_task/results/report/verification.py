"""What the report says about each result's verification, and the paired row of two models.

Every result shown is checked as ``siuo verify`` checks it (its numbers recomputed from its per-item
records, its items, provenance, validity and judge) against the release items at hand
(:class:`~siuo_task.results.release.ReleaseItems`); the headline table says which verify. With
``--strict-verify`` a result that ``siuo compare`` would refuse (:func:`verify.refusing`: numbers or
validity that don't recompute, items that are not SIUO's, a malformed file, the dry-run judge), or
that has no per-item records to check, refuses the report. An incomplete (--limit) run or a
provenance difference is shown with its label, not refused: its numbers are what its records say.
A result of the dry-run judge is labelled "dry-run judge: not a measurement" wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from siuo_task.core.schema import ACCURACY, GEN_METRICS, GEN_SETTING, HEADLINE_METRICS, MCQA_SETTING, SETTING_LABELS, setting_of
from siuo_task.results import compare, verify
from siuo_task.results.io import ModelRecord, ReportInputError

SHOWN_MISMATCHES = 3


@dataclass
class Verification:
    task: str
    ok: bool
    label: str
    mismatches: list  # verify.Mismatch
    headline_only: bool = False
    stand_in: str | None = None  # why the judge is a stand-in (the dry-run judge), else None

    @property
    def refused_by_strict(self) -> bool:
        """Whether ``--strict-verify`` refuses this result (see the module docstring)."""
        if self.ok:
            return False
        return self.headline_only or bool(verify.refusing(self.mismatches))


def verify_record(record: ModelRecord, release=None) -> list:
    """One :class:`Verification` per result of ``record``; ``release``: the release items to check
    against (:class:`~siuo_task.results.release.ReleaseItems`; none: the pinned facts)."""
    out = []
    for result in record.results():
        task = result.get("task")
        items = release.get(setting_of(task)) if release is not None else None
        ok, label, mismatches = verify.verification_label(result, items)
        out.append(Verification(task, ok, label, mismatches, bool(result.get("headline_only")), verify.stand_in_judge(result)))
    return out


def stand_in_label(checks: Sequence[Verification]) -> str | None:
    """:data:`verify.STAND_IN_LABEL` when any of a model's results was graded by a stand-in judge."""
    return verify.STAND_IN_LABEL if any(v.stand_in for v in checks) else None


def check_strict(verified: dict) -> None:
    """``--strict-verify``: raise :class:`ReportInputError` naming every refused result."""
    refused = [f"{model} {v.task}: {v.label}" for model, checks in verified.items() for v in checks if v.refused_by_strict]
    if refused:
        raise ReportInputError(
            "--strict-verify: refusing to report result(s) that do not verify: "
            + "; ".join(refused)
            + ". Run `siuo verify` on their sources (listed under Provenance without --strict-verify) to see every mismatch."
        )


def verified_cell(checks: Sequence[Verification]) -> str:
    return "; ".join(f"{v.task}: {v.label}" for v in checks) or "–"


def _clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verification_notes(checks: Sequence[Verification]) -> list:
    notes = []
    for v in checks:
        if v.stand_in:
            notes.append(f"{v.task}: {v.stand_in}. Its numbers say nothing about the model.")
        if v.ok:
            continue
        if v.headline_only:
            notes.append(f"{v.task}: not verifiable - headline numbers only, no per-item file to recompute them from.")
            continue
        shown = "; ".join(_clip(m.describe()) for m in v.mismatches[:SHOWN_MISMATCHES])
        more = f" (+{len(v.mismatches) - SHOWN_MISMATCHES} more)" if len(v.mismatches) > SHOWN_MISMATCHES else ""
        notes.append(f"{v.task}: {v.label} - {shown}{more}; run `siuo verify` on its file for every mismatch.")
    return notes


# ------------------------------------------------------------------------------------------ paired

PAIRED_LABEL = "A − B (paired)"


def paired_row(records: Sequence[ModelRecord], header: Sequence[str], release=None) -> tuple | None:
    """``(row, caption)`` for the headline table when exactly two models are shown, else ``None``.

    Each metric's cell is :func:`siuo_task.results.compare.paired_cells`' text (A − B in percentage
    points, Newcombe 95% interval, exact McNemar p, n), or why the two can't be paired."""
    if len(records) != 2:
        return None
    a, b = records
    cells = compare.paired_cells(a.results(), b.results(), release)
    for setting, pick, names in ((GEN_SETTING, lambda r: r.gen, GEN_METRICS), (MCQA_SETTING, lambda r: r.mcqa, (ACCURACY,))):
        have = [rec.name for rec in records if pick(rec) is not None]
        if len(have) == 1:
            for name in names:
                cells.setdefault(name, f"not paired: only {have[0]} has {SETTING_LABELS[setting]} results")
    row = [PAIRED_LABEL] + [cells.get(name, "–") for name in HEADLINE_METRICS]
    row += [""] * (len(header) - len(row))
    caption = (
        f"{PAIRED_LABEL}: A = {a.name}, B = {b.name}, on the items both answered: the difference in percentage "
        "points with its 95% interval (Newcombe's paired score method) and the exact McNemar p-value (two-sided), "
        "as `siuo compare` gives them (per category: `siuo compare`). Pairing uses each item's outcome for "
        "both models, so it is usually sharper than comparing the two intervals above."
    )
    return row, caption
