"""How a verification is said: the report's short label, what refuses a result, the text of
``siuo verify`` (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from siuo_task.results.verify.model import MALFORMED, STAND_IN, STAND_IN_LABEL, Mismatch, VerifyReport, mismatch_kind

# What makes `siuo report --strict-verify` and `siuo compare` refuse a result: numbers or validity
# that do not recompute, items that are not SIUO's (other than an incomplete run), a stand-in
# judge, a malformed file. A provenance difference, or an incomplete run, is shown with its label.
REFUSING_KINDS = ("numbers", "validity", STAND_IN, MALFORMED)


def is_incomplete(mismatch: Mismatch) -> bool:
    return mismatch.path == "items" and str(mismatch.note).startswith("incomplete")


def refusing(mismatches: Sequence[Mismatch], *, allow_stand_in: bool = False) -> list:
    """The mismatches that refuse a result (:data:`REFUSING_KINDS`, and items that are not SIUO's);
    ``allow_stand_in``: not those of a stand-in judge (``siuo compare --allow-dry-run-judge``)."""
    out = []
    for mismatch in mismatches:
        kind = mismatch_kind(mismatch)
        if kind == STAND_IN and allow_stand_in:
            continue
        if kind in REFUSING_KINDS or (kind == "coverage" and not is_incomplete(mismatch)):
            out.append(mismatch)
    return out


def label_of(report: VerifyReport) -> str:
    """``"verified"``, or ``"NOT VERIFIED: <why>"``: "dry-run judge: not a measurement", "malformed
    (...)", "marked invalid", "incomplete (40 of 167 items)", "items differ from SIUO (...)",
    "1 number differs (metrics.safe)", "provenance (...)"."""
    if report.ok:
        return "verified"
    if report.kind == "headline_only":
        return "NOT VERIFIED: headline numbers only, no per-item records"
    parts = []
    by_kind: dict = {}
    for mismatch in report.mismatches:
        by_kind.setdefault(mismatch_kind(mismatch), []).append(mismatch)
    if STAND_IN in by_kind:
        recorded = any(m.stored is True for m in by_kind[STAND_IN])
        parts.append(STAND_IN_LABEL if recorded else "judge not known to be real (dry_run not recorded)")
    if MALFORMED in by_kind:
        parts.append(f"malformed ({_paths(by_kind[MALFORMED])})")
    if "validity" in by_kind:
        marked = any(m.path == "valid" and m.stored is False for m in by_kind["validity"])
        parts.append("marked invalid" if marked else f"validity does not recompute ({_paths(by_kind['validity'])})")
    if "coverage" in by_kind:
        incomplete = next((m for m in by_kind["coverage"] if is_incomplete(m)), None)
        if incomplete is not None:
            parts.append(f"incomplete ({incomplete.stored} of {incomplete.recomputed} items)")
        others = [m for m in by_kind["coverage"] if m is not incomplete]
        if others:
            parts.append(f"items differ from SIUO ({_paths(others)})")
    if "numbers" in by_kind:
        n = len(by_kind["numbers"])
        parts.append(f"{n} number{'s differ' if n != 1 else ' differs'} ({_paths(by_kind['numbers'])})")
    if "provenance" in by_kind:
        parts.append(f"provenance ({_paths(by_kind['provenance'])})")
    return "NOT VERIFIED: " + "; ".join(parts)


def _paths(mismatches: Sequence[Mismatch], shown: int = 3) -> str:
    paths = list(dict.fromkeys(m.path for m in mismatches))
    return ", ".join(paths[:shown]) + (f", +{len(paths) - shown} more" if len(paths) > shown else "")


def format_report(report: VerifyReport, max_list: int | None = 50) -> str:
    if report.ok:
        status = "VERIFIED"
    elif report.malformed:
        status = f"MALFORMED ({len(report.mismatches)} field(s))"
    else:
        status = f"NOT VERIFIED ({len(report.mismatches)} mismatch(es))"
    lines = [f"{report.source}: {report.task or '?'} ({report.kind}): {status}"]
    stand_in = [m for m in report.mismatches if mismatch_kind(m) == STAND_IN]
    if stand_in:
        lines.append(f"  {STAND_IN_LABEL.upper()}: {stand_in[0].note}")
    if report.items_checked:
        lines.append(f"  agrees: {report.items_checked} per-item record(s) recompute")
    for path in report.agrees:
        lines.append(f"  agrees: {path}")
    shown = report.mismatches[:max_list]  # None: all
    for mismatch in shown:
        word = "MALFORMED" if mismatch_kind(mismatch) == MALFORMED else "MISMATCH"
        lines.append(f"  {word} {mismatch.describe()}")
    if max_list is not None and len(report.mismatches) > max_list:
        lines.append(f"  ... {len(report.mismatches) - max_list} more mismatch(es) (use --json for all)")
    for note in report.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
