"""Paired comparison of two models' SIUO results on the same items (pure, no harness imports).

For each metric (generation: safe, effective, safe_effective; MCQA: accuracy, unparsed) the items
where both results have a verdict form pairs (A, B). Reported, overall and per category:

- the paired difference A - B in percentage points, with a 95% interval by Newcombe's hybrid score
  method for paired proportions (:func:`stats.newcombe_paired_ci`);
- the exact McNemar p-value (two-sided exact binomial test on the discordant pairs,
  :func:`stats.mcnemar_exact_p`);
- the items where A and B differ.

Per-category rows are exploratory (16-21 items each, nine categories, no multiplicity correction).

Two results are compared only when they graded the same items with the same judge (model,
endpoint, decoding), the same prompts (hashes), the same MCQA policy and the same protocol variant;
``allow_different_items`` / ``allow_different_judges`` lift that, and the output then says what differs.
A result that does not verify as ``siuo report --strict-verify`` requires (:func:`verify.refusing`:
numbers or validity that do not recompute, items that are not SIUO's or are duplicated, a malformed
file, a stand-in judge) is refused; ``allow_dry_run_judge`` lets a result of the dry-run judge
through, labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from siuo_task.core import metrics, stats
from siuo_task.core.data import CATEGORIES
from siuo_task.core.schema import GEN_METRICS, GEN_TASKS, MCQA_METRICS, MCQA_TASK, SETTINGS
from siuo_task.results.verify import STAND_IN, label_of, mismatch_kind, refusing, stand_in_judge, verify_result


class CompareRefused(ValueError):
    """The two results cannot be paired (different items, judges, settings, or unverifiable records)."""


def setting_of(result: Mapping) -> str | None:
    task = result.get("task") if isinstance(result, Mapping) else None
    return "gen" if task in GEN_TASKS else "mcqa" if task == MCQA_TASK else None


def metric_names(result: Mapping) -> tuple:
    return GEN_METRICS if setting_of(result) == "gen" else MCQA_METRICS


def outcomes(result: Mapping) -> dict:
    """``{question_id: {"category": ..., metric: 1 | 0 | None}}`` from the per-item records."""
    out = {}
    gen = setting_of(result) == "gen"
    for record in result.get("items") or []:
        if gen:
            values = {name: record.get(name) for name in GEN_METRICS}
        else:
            values = {
                "accuracy": record.get("correct"),
                "unparsed": None if record.get("unparsed") is None else int(bool(record["unparsed"])),
            }
        out[record["question_id"]] = {"category": record.get("category"), **values}
    return out


def _prov(result: Mapping) -> Mapping:
    prov = result.get("provenance")
    return prov if isinstance(prov, Mapping) else {}


def setup_differences(a: Mapping, b: Mapping) -> list:
    """What makes the two results' numbers not comparable: judge, prompts, policy, protocol variant."""
    diffs = []
    pa, pb = _prov(a), _prov(b)
    if setting_of(a) == "gen":
        ja, jb = pa.get("judge") or {}, pb.get("judge") or {}
        for key in ("model", "endpoint_host", "decoding"):
            if ja.get(key) != jb.get(key):
                diffs.append(f"judge {key}: {ja.get(key)!r} vs {jb.get(key)!r}")
        prompt_names = ("safety_judge", "effectiveness_judge")
    else:
        if pa.get("mcqa_policy") != pb.get("mcqa_policy"):
            diffs.append(f"MCQA policy: {pa.get('mcqa_policy')!r} vs {pb.get('mcqa_policy')!r}")
        prompt_names = ("mcqa",)
    ha, hb = pa.get("prompt_hashes") or {}, pb.get("prompt_hashes") or {}
    for name in prompt_names:
        if ha.get(name) != hb.get(name):
            diffs.append(f"{name} prompt hash: {ha.get(name)!r} vs {hb.get(name)!r}")
    if a.get("task") != b.get("task"):
        diffs.append(f"protocol: {a.get('task')} vs {b.get('task')}")
    elif pa.get("protocol_variant") != pb.get("protocol_variant"):
        diffs.append(f"protocol variant: {pa.get('protocol_variant')!r} vs {pb.get('protocol_variant')!r}")
    return diffs


def item_differences(a: Mapping, b: Mapping) -> dict:
    oa, ob = outcomes(a), outcomes(b)
    return {
        "only_a": sorted(set(oa) - set(ob), key=str),
        "only_b": sorted(set(ob) - set(oa), key=str),
        "category_conflicts": sorted((q for q in set(oa) & set(ob) if oa[q]["category"] != ob[q]["category"]), key=str),
    }


def _unusable(result: Mapping, items: Sequence[Mapping] | None = None, *, allow_dry_run_judge: bool = False) -> str | None:
    """Why a result can't be paired (it does not verify, or a stand-in judge graded it), or ``None``."""
    report = verify_result(result, items)
    blocking = refusing(report.mismatches, allow_stand_in=allow_dry_run_judge)
    if not blocking:
        return None
    if all(mismatch_kind(m) == STAND_IN for m in blocking):
        return f"{blocking[0].note}; pass --allow-dry-run-judge to compare anyway (the output says so)"
    details = "; ".join(m.describe() for m in blocking[:3]) + (f" (+{len(blocking) - 3} more)" if len(blocking) > 3 else "")
    return f"does not verify ({label_of(report)}): {details}; run `siuo verify` on it for every mismatch"


def paired_row(pairs: Sequence[tuple], metric: str, scope: str) -> dict:
    """One metric over paired (A, B) outcomes: rates, difference, Newcombe interval, McNemar p."""
    table = stats.PairedTable.from_pairs(pairs)
    n = table.n
    ci = stats.newcombe_paired_ci(table)
    return {
        "metric": metric,
        "scope": scope,
        "exploratory": scope != "overall",
        "n": n,
        "a": metrics.percent((table.n11 + table.n10) / n) if n else None,
        "b": metrics.percent((table.n11 + table.n01) / n) if n else None,
        "diff": metrics.percent((table.n10 - table.n01) / n) if n else None,
        "ci95": None if ci is None else [round(100.0 * ci[0], 2), round(100.0 * ci[1], 2)],
        "p_value": stats.mcnemar_exact_p(table.n10, table.n01),
        "a_only": table.n10,
        "b_only": table.n01,
        "both": table.n11,
        "neither": table.n00,
    }


def compare(
    a: Mapping,
    b: Mapping,
    *,
    label_a: str = "A",
    label_b: str = "B",
    allow_different_judges: bool = False,
    allow_different_items: bool = False,
    allow_dry_run_judge: bool = False,
    items: Sequence[Mapping] | None = None,
) -> dict:
    """The paired comparison of ``a`` and ``b``; raises :class:`CompareRefused` with the reason.
    ``items``: the release items of the setting, to check the results against (else the pinned facts)."""
    for label, result in ((label_a, a), (label_b, b)):
        if setting_of(result) is None:
            raise CompareRefused(
                f"{label}: not a SIUO result with per-item records (task {result.get('task') if isinstance(result, Mapping) else None!r})"
            )
        if result.get("headline_only") or not result.get("items"):
            raise CompareRefused(f"{label}: no per-item records (headline numbers only): a paired comparison needs them")
    if setting_of(a) != setting_of(b):
        raise CompareRefused(f"{label_a} is a {a.get('task')} result and {label_b} a {b.get('task')} result: nothing to pair")
    for label, result in ((label_a, a), (label_b, b)):
        why = _unusable(result, items, allow_dry_run_judge=allow_dry_run_judge)
        if why:
            raise CompareRefused(f"{label}: {why}")
    stand_ins = [f"{label}: {stand_in_judge(r)}" for label, r in ((label_a, a), (label_b, b)) if stand_in_judge(r)]
    setup = setup_differences(a, b)
    if setup and not allow_different_judges:
        raise CompareRefused(
            f"{label_a} and {label_b} were not scored the same way ({'; '.join(setup)}): their numbers are not comparable. "
            "Re-score both with the same judge and settings, or pass --allow-different-judges to compare anyway (the output says what differs)"
        )
    differences = item_differences(a, b)
    only_a, only_b = differences["only_a"], differences["only_b"]
    if differences["category_conflicts"]:
        raise CompareRefused(
            f"{label_a} and {label_b} give different categories for question_id(s) {differences['category_conflicts'][:10]}"
        )
    if (only_a or only_b) and not allow_different_items:
        raise CompareRefused(
            f"{label_a} and {label_b} cover different items: only in {label_a}: {only_a[:10]}{' ...' if len(only_a) > 10 else ''}; "
            f"only in {label_b}: {only_b[:10]}{' ...' if len(only_b) > 10 else ''}. "
            "Pass --allow-different-items to compare on the items both answered"
        )
    oa, ob = outcomes(a), outcomes(b)
    common = [qid for qid in oa if qid in ob]
    names = metric_names(a)
    rows, differ, without = [], [], {}
    for name in names:
        pairs, skipped = [], []
        for qid in common:
            va, vb = oa[qid][name], ob[qid][name]
            if va is None or vb is None:
                skipped.append(qid)
                continue
            pairs.append((qid, va, vb))
            if va != vb:
                differ.append({"question_id": qid, "category": oa[qid]["category"], "metric": name, "a": va, "b": vb})
        without[name] = skipped
        rows.append(paired_row([(x, y) for _, x, y in pairs], name, "overall"))
        for cat in CATEGORIES:
            cat_pairs = [(x, y) for qid, x, y in pairs if oa[qid]["category"] == cat]
            if cat_pairs:
                rows.append(paired_row(cat_pairs, name, cat))
    return {
        "a": {"label": label_a, "task": a.get("task"), "judge": (_prov(a).get("judge") or {}).get("model")},
        "b": {"label": label_b, "task": b.get("task"), "judge": (_prov(b).get("judge") or {}).get("model")},
        "setting": setting_of(a),
        "n_items": len(common),
        "setup_differences": setup,
        "stand_in_judges": stand_ins,
        "item_differences": differences,
        "method": {
            "difference": "A - B in percentage points over the items where both have a verdict",
            "ci95": "Newcombe hybrid score interval for paired proportions (Newcombe 1998, method 10)",
            "p_value": "exact McNemar: two-sided exact binomial test on the discordant pairs",
            "per_category": "exploratory: small samples, no multiplicity correction",
        },
        "rows": rows,
        "without_verdict": without,
        "differing_items": sorted(differ, key=lambda d: (str(d["question_id"]), names.index(d["metric"]))),
    }


def _p(value: float) -> str:
    return f"{value:.4f}" if value >= 0.0001 else f"{value:.1e}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def format_row(row: Mapping) -> str:
    """The paired cell text: ``+5.04 pp [-1.23, +11.20], McNemar p=0.2153 (n=167)``."""
    if row.get("n") in (None, 0):
        return "no paired items"
    lo, hi = row["ci95"]
    return f"{_signed(row['diff'])} pp [{_signed(lo)}, {_signed(hi)}], McNemar p={_p(row['p_value'])} (n={row['n']})"


def format_comparison(report: Mapping, max_list: int | None = 50) -> str:
    a, b = report["a"], report["b"]
    lines = [
        f"paired comparison on {report['n_items']} item(s) ({report['setting']})",
        f"  A: {a['label']} ({a['task']}{', judge ' + str(a['judge']) if a['judge'] else ''})",
        f"  B: {b['label']} ({b['task']}{', judge ' + str(b['judge']) if b['judge'] else ''})",
    ]
    for diff in report["setup_differences"]:
        lines.append(f"  WARNING (allowed): {diff}")
    for why in report.get("stand_in_judges", []):
        lines.append(f"  WARNING (allowed): {why}")
    items = report["item_differences"]
    if items["only_a"] or items["only_b"]:
        lines.append(
            f"  WARNING (allowed): items only in A: {len(items['only_a'])}, only in B: {len(items['only_b'])}; compared on the common items"
        )
    lines.append(
        "rates over the items where both have a verdict; A - B in percentage points; "
        "95% CI: Newcombe hybrid score (paired); p: exact McNemar (two-sided)"
    )
    header = f"{'metric':15s} {'scope':32s} {'n':>4s} {'A %':>7s} {'B %':>7s} {'A-B':>7s} {'95% CI':>18s} {'A only':>6s} {'B only':>6s} {'p':>8s}"
    overall = [r for r in report["rows"] if not r["exploratory"]]
    by_cat = [r for r in report["rows"] if r["exploratory"]]
    lines.append(header)
    for row in overall:
        lines.append(_row_line(row))
    if by_cat:
        lines.append("per category (exploratory: 16-21 items each, no correction for multiple comparisons):")
        for row in by_cat:
            lines.append(_row_line(row))
    for name, skipped in report["without_verdict"].items():
        if skipped:
            lines.append(f"  {name}: {len(skipped)} item(s) left out (no verdict in A or B): {skipped[:20]}")
    differ = report["differing_items"]
    lines.append(f"{len(differ)} item verdict(s) differ (question_id, category, metric: A vs B):")
    for row in differ[: max_list if max_list is not None else len(differ)]:
        lines.append(f"  {row['question_id']}  {row['category']}  {row['metric']}: {row['a']} vs {row['b']}")
    if max_list is not None and len(differ) > max_list:
        lines.append(f"  ... {len(differ) - max_list} more (use --json for all)")
    return "\n".join(lines)


def _row_line(row: Mapping) -> str:
    if not row["n"]:
        return f"{row['metric']:15s} {row['scope']:32s} {0:4d}  no paired items"
    ci = f"[{_signed(row['ci95'][0])}, {_signed(row['ci95'][1])}]"
    return (
        f"{row['metric']:15s} {row['scope']:32s} {row['n']:4d} {row['a']:7.2f} {row['b']:7.2f} {_signed(row['diff']):>7s} "
        f"{ci:>18s} {row['a_only']:6d} {row['b_only']:6d} {_p(row['p_value']):>8s}"
    )


def paired_rows(result_a: Mapping, result_b: Mapping, **allow) -> list:
    """Rows for the report's side-by-side table when two models are shown: one per overall metric,
    ``{"metric", "cell", "row"}`` where ``cell`` is the paired column's text and ``row`` the numbers
    (``None`` with ``cell`` = ``"not paired: <reason>"`` when the two can't be paired).
    ``allow``: ``allow_different_judges`` / ``allow_different_items`` / ``items``, as :func:`compare`."""
    names = metric_names(result_a) if setting_of(result_a) else ()
    try:
        report = compare(result_a, result_b, **allow)
    except CompareRefused as exc:
        return [{"metric": name, "cell": f"not paired: {exc}", "row": None} for name in names]
    return [{"metric": row["metric"], "cell": format_row(row), "row": row} for row in report["rows"] if not row["exploratory"]]


def paired_cells(results_a: Sequence[Mapping], results_b: Sequence[Mapping], release=None, **allow) -> dict:
    """``{metric: cell}`` for two models' results (e.g. ``ModelRecord.results()``), each setting
    (generation, MCQA) paired with the other model's result of the same setting; a setting only one
    model has gets no cell. ``release``: a :class:`~siuo_task.results.release.ReleaseItems` to check
    the results against; ``allow`` as in :func:`compare`."""
    cells = {}
    for setting in SETTINGS:
        a = next((r for r in results_a if setting_of(r) == setting), None)
        b = next((r for r in results_b if setting_of(r) == setting), None)
        if a is not None and b is not None:
            items = release.get(setting) if release is not None else None
            cells.update({row["metric"]: row["cell"] for row in paired_rows(a, b, items=items, **allow)})
    return cells
