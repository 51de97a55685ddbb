"""What a verification finds: mismatches, the report of one input, exact comparison (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Why a result is not verified. Besides the kinds a field path implies (:func:`mismatch_kind`):
STAND_IN = "stand-in judge"  # graded by the dry-run judge (or not recorded whether it was)
MALFORMED = "malformed"  # a field of the wrong type: nothing can be recomputed (exit 2)
STAND_IN_LABEL = "dry-run judge: not a measurement"


@dataclass(frozen=True)
class Mismatch:
    path: str  # the field, e.g. "metrics.safe" or "items[question_id=1001].safe_votes"
    stored: Any  # what the file says
    recomputed: Any  # what its own records (or the pinned protocol) give
    note: str = ""
    kind: str = ""  # STAND_IN or MALFORMED; otherwise derived from the path (mismatch_kind)

    def describe(self) -> str:
        if self.kind == MALFORMED:
            return f"{self.path}: expected {self.recomputed}"
        text = f"{self.path}: stored {short(self.stored)}, recomputed {short(self.recomputed)}"
        return f"{text} ({self.note})" if self.note else text


@dataclass
class VerifyReport:
    source: str
    task: str | None
    kind: str  # "result", "official_submission", "headline_only" or "malformed"
    agrees: list = field(default_factory=list)  # field paths that recompute (aggregates; items are counted)
    items_checked: int = 0  # per-item records whose votes, verdicts and decisions recompute
    mismatches: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # facts worth knowing that are not failures

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def malformed(self) -> bool:
        return self.kind == MALFORMED

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "task": self.task,
            "kind": self.kind,
            "ok": self.ok,
            "agrees": list(self.agrees),
            "items_checked": self.items_checked,
            "mismatches": [
                {"path": m.path, "stored": m.stored, "recomputed": m.recomputed, "note": m.note, "kind": mismatch_kind(m)}
                for m in self.mismatches
            ],
            "notes": list(self.notes),
        }


def malformed(path: str, expected: str) -> Mismatch:
    """A field of the wrong type (``path`` empty: the file itself)."""
    return Mismatch(path or "(top level)", None, expected, "malformed", MALFORMED)


def short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mismatch_kind(mismatch: Mismatch) -> str:
    """``"validity"``, ``"coverage"`` (which items, the answer key), ``"provenance"``, ``"numbers"``
    (anything recomputed), or the explicit :data:`STAND_IN` / :data:`MALFORMED`."""
    if mismatch.kind:
        return mismatch.kind
    path = mismatch.path
    if path in ("valid", "invalid_reasons") or path == "provenance.judge.max_error_rate":
        return "validity"
    if (
        path in ("items", "data")
        or path.endswith(".category")
        or path.endswith(".correct_option")
        or (path.startswith("items[") and "." not in path)
    ):
        return "coverage"
    if path == "provenance.protocol_variant":
        return "numbers"
    if path.startswith("provenance.") or path == "provenance":
        return "provenance"
    return "numbers"


# ------------------------------------------------------------------------------------------ compare


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same(stored: Any, recomputed: Any) -> bool:
    """Exact equality, strict about types where JSON is ambiguous (``true`` is not ``1``)."""
    if recomputed is None:
        return stored is None
    if isinstance(recomputed, bool):
        return isinstance(stored, bool) and stored == recomputed
    if is_number(recomputed):
        return is_number(stored) and stored == recomputed
    if isinstance(recomputed, (list, tuple)):
        return isinstance(stored, (list, tuple)) and len(stored) == len(recomputed) and all(same(s, r) for s, r in zip(stored, recomputed))
    if isinstance(recomputed, Mapping):
        return isinstance(stored, Mapping) and set(stored) == set(recomputed) and all(same(stored[k], recomputed[k]) for k in recomputed)
    return type(stored) is type(recomputed) and stored == recomputed


MISSING = object()


def get(container: Any, dotted: str) -> Any:
    node = container
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


class Checker:
    """Collects a report's agreements and mismatches; remembers which fields it compared."""

    def __init__(self, report: VerifyReport):
        self.report = report
        self.checked: set = set()  # field paths compared with a recomputed value

    def field(self, result: Mapping, path: str, recomputed: Any, *, record: bool = True, note: str = "") -> bool:
        self.checked.add(path)
        stored = get(result, path)
        if stored is MISSING:
            self.report.mismatches.append(Mismatch(path, None, recomputed, "field missing"))
            return False
        if same(stored, recomputed):
            if record:
                self.report.agrees.append(path)
            return True
        self.report.mismatches.append(Mismatch(path, stored, recomputed, note))
        return False

    def value(self, path: str, stored: Any, recomputed: Any, note: str) -> bool:
        if stored is MISSING:
            self.report.mismatches.append(Mismatch(path, None, recomputed, "field missing"))
            return False
        if same(stored, recomputed):
            return True
        self.report.mismatches.append(Mismatch(path, stored, recomputed, note))
        return False

    def fail(self, path: str, stored: Any, expected: Any, note: str, kind: str = "") -> None:
        self.report.mismatches.append(Mismatch(path, stored, expected, note, kind))

    def agree(self, text: str) -> None:
        self.report.agrees.append(text)

    def note(self, text: str) -> None:
        self.report.notes.append(text)
