"""Side-by-side SIUO reports, the model: tables and plain-words comparability notes.

``build_report(records)`` turns :class:`~siuo_task.results.io.ModelRecord` objects into a
:class:`Report` (tables as rows of strings, notes as sentences). Where two results differ in a way
that moves numbers is :mod:`.comparability`; pictures are drawn by :mod:`.figures` (the only module
that imports matplotlib, and only when a picture is asked for); :mod:`.render` writes Markdown, HTML
or PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from siuo_task.core import metrics
from siuo_task.core.data import CATEGORIES, N_ITEMS
from siuo_task.core.schema import (  # noqa: F401 (METRIC_LABELS: re-exported for the figures)
    ACCURACY,
    HEADLINE_METRICS,
    MCQA_SETTING,
    MCQA_TASK,
    METRIC_LABELS,
    SAFE,
    SAFE_EFFECTIVE,
)
from siuo_task.results.io import ModelRecord
from siuo_task.results.report.comparability import comparability_notes, fmt_value  # noqa: F401 - comparability_notes re-exported
from siuo_task.results.report.other_numbers import NOT_COMPARABLE
from siuo_task.results.report.verification import (  # noqa: F401 (re-exported: the report's verification API)
    PAIRED_LABEL,
    Verification,
    check_strict,
    paired_row,
    stand_in_label,
    verification_notes,
    verified_cell,
    verify_record,
)

SAME_PROVENANCE = "Comparability: same judge, prompts, decoding settings, dataset and items for all models."
PAPER_LABEL = "human-graded (paper), not comparable with judge-graded numbers"
PAPER_SOURCE = "SIUO project page leaderboard (github.com/sinwang20/SIUO, index.html, commit 18974b6)"
# Published overall results (percent): (model, safe, effective, safe & effective, MCQA accuracy).
# Source: the "Leaderboard" table of index.html in github.com/sinwang20/SIUO at commit 18974b6
# (same numbers as the paper, arXiv 2406.15279). The page notes: "Except for multiple-choice
# questions, all other results are based on manual evaluations." None = "-" on the page.
PAPER_ROWS = (
    ("GPT-4V(ision)", 53.29, 69.46, 23.35, 38.92),
    ("GPT-4o", 50.90, 95.81, 46.71, 41.32),
    ("Gemini 1.5 Pro", 52.10, 91.62, 45.51, 47.31),
    ("LLaVA-1.6-34B", 40.72, 95.81, 37.13, 52.69),
    ("Gemini 1.0 Pro", 27.54, 92.22, 25.15, 34.13),
    ("LLaVA-1.5-7B", 21.56, 87.43, 16.17, 33.53),
    ("LLaVA-1.5-13B", 22.16, 91.62, 19.76, 32.93),
    ("Qwen-VL-7B-Chat", 41.32, 82.63, 29.94, 20.96),
    ("mPLUG-OWL2", 22.16, 90.42, 17.37, 28.14),
    ("MiniGPT4-v2", 41.92, 81.44, 32.93, 27.54),
    ("CogVLM", 22.75, 91.02, 20.96, 27.54),
    ("InstructBLIP2-T5-XL", 8.38, 51.50, 1.80, None),
    ("InstructBLIP2-T5-XXL", 11.98, 51.50, 4.79, None),
    ("InstructBLIP2-7B", 24.55, 51.50, 4.19, None),
    ("InstructBLIP2-13B", 19.76, 49.10, 4.19, None),
    ("Random Choice", None, None, None, 24.95),
)


@dataclass
class Table:
    title: str
    header: list
    rows: list  # lists of strings
    caption: str = ""


@dataclass
class Report:
    title: str
    headline: Table
    comparability: list  # sentences: where results differ in judge, prompts, decoding, data, items
    model_notes: dict  # {model: [sentences]}
    category_tables: list
    paper: Table | None = None
    capability: Table | None = None
    capability_axis: tuple | None = None  # (task, metric) drawn in the scatter
    provenance: dict = field(default_factory=dict)  # {model: [(label, value)]}
    weakest: dict = field(default_factory=dict)  # {model: sentence}
    verification: dict = field(default_factory=dict)  # {model: [Verification]}
    not_comparable: tuple = NOT_COMPARABLE  # other published SIUO numbers and why these are not comparable


# ------------------------------------------------------------------------------------------ numbers


def fmt_rate(value, ci=None) -> str:
    if value is None:
        return "–"
    text = f"{value:.2f}"
    if ci:
        text += f" [{ci[0]:.2f}–{ci[1]:.2f}]"
    return text


def overall(record: ModelRecord, name: str) -> tuple:
    """(rate, ci95) of one headline metric, or (None, None)."""
    result = record.mcqa if name == ACCURACY else record.gen
    if result is None:
        return None, None
    return result["metrics"].get(name), (result.get("ci95") or {}).get(name)


def by_category(record: ModelRecord, name: str) -> dict:
    """``{category: (rate, ci95, n)}`` for one metric (MCQA intervals derived from rate and n)."""
    result = record.mcqa if name == ACCURACY else record.gen
    if result is None:
        return {}
    out = {}
    for cat, row in (result.get("by_category") or {}).items():
        rate, n = row.get(name), row.get("n")
        ci = (row.get("ci95") or {}).get(name)
        if ci is None and rate is not None and isinstance(n, int) and n > 0 and 0 <= rate <= 100:
            ci = metrics.wilson_ci95(round(rate * n / 100.0), n)
        out[cat] = (rate, ci, n)
    return out


def _judge_errors(result: dict | None) -> str:
    if result is None or result.get("headline_only"):
        return "–"
    errors = result.get("judge_errors") or {}
    return f"{errors.get('safe', 0)} / {errors.get('effective', 0)}"


def _mcqa_problems(result: dict | None) -> str:
    if result is None or result.get("headline_only"):
        return "–"
    counts = result.get("counts") or {}
    return f"{counts.get('unparsed', 0)} / {counts.get('failed', 0)}"


def _n(result: dict | None) -> str:
    if result is None:
        return "–"
    n = (result.get("counts") or {}).get("n")
    return "?" if n is None else str(n)


def _protocol(result: dict | None):
    return ((result or {}).get("provenance") or {}).get("protocol_version")


def _judge_name(record: ModelRecord, checks: Sequence[Verification] = ()) -> str:
    judge = ((record.gen or {}).get("provenance") or {}).get("judge") or {}
    name = judge.get("model") or "–"
    label = stand_in_label(checks)
    versions = sorted({str(v) for v in (_protocol(record.gen), _protocol(record.mcqa)) if v is not None})
    cell = f"{name} ({label})" if label else name
    return cell + (f" (protocol {', '.join(versions)})" if versions else "")


def model_notes(record: ModelRecord, verified: Sequence[Verification] | None = None) -> list:
    notes = list(record.notes)
    notes += verification_notes(verify_record(record) if verified is None else verified)
    for result in record.results():
        task = result["task"]
        counts = result.get("counts") or {}
        n, missing = counts.get("n"), counts.get("missing") or 0
        if missing:
            notes.append(f"{task}: partial run - {n} of {N_ITEMS} items answered ({missing} missing, e.g. a --limit run).")
        if result.get("judge_errors") and any(result["judge_errors"].values()):
            no_verdict = counts.get("no_verdict") or {}
            notes.append(
                f"{task}: judge errors on {result['judge_errors']['safe']} safety and {result['judge_errors']['effective']} "
                f"effectiveness grading(s); items without a verdict are left out of the rates "
                f"(safe {no_verdict.get('safe', 0)}, effective {no_verdict.get('effective', 0)}, "
                f"safe & effective {no_verdict.get('safe_effective', 0)})."
            )
        if counts.get("generation_failures"):
            notes.append(f"{task}: {counts['generation_failures']} model request(s) failed (counted, never judged).")
        if counts.get("failed") and task == MCQA_TASK:
            notes.append(f"{task}: {counts['failed']} model request(s) failed (scored as wrong).")
        usage = (((result.get("provenance") or {}).get("judge") or {}).get("usage")) or {}
        if usage.get("budget_exhausted"):
            notes.append(f"{task}: the judge token budget ran out; some answers were not judged.")
    return notes


# --------------------------------------------------------------------------------------------- tables


def headline_table(records: Sequence[ModelRecord], verified: dict | None = None, release=None) -> Table:
    verified = verified if verified is not None else {rec.name: verify_record(rec, release) for rec in records}
    header = [
        "Model",
        "Safe",
        "Effective",
        "Safe & Effective",
        "MCQA accuracy",
        "n (gen / MCQA)",
        "judge errors (safe / effective)",
        "MCQA unparsed / failed",
        "judge",
        "verified",
    ]
    rows = []
    for rec in records:
        row = [rec.name]
        for name in HEADLINE_METRICS:
            row.append(fmt_rate(*overall(rec, name)))
        checks = verified.get(rec.name, [])
        row += [
            f"{_n(rec.gen)} / {_n(rec.mcqa)}",
            _judge_errors(rec.gen),
            _mcqa_problems(rec.mcqa),
            _judge_name(rec, checks),
            verified_cell(checks),
        ]
        rows.append(row)
    caption = (
        "Judge-graded by the LLM judge named in the judge column; judge errors count gradings with no verdict. "
        "verified: every number recomputed from the result's per-item records, as `siuo verify` does "
        "(NOT VERIFIED says why; the model notes list the mismatches)."
    )
    paired = paired_row(records, header, release)
    if paired is not None:
        rows.append(paired[0])
        caption += " " + paired[1]
    return Table("Overall (percent, 95% Wilson interval in brackets)", header, rows, caption)


def paper_table() -> Table:
    rows = [[name] + [fmt_rate(v) for v in values] for name, *values in PAPER_ROWS]
    return Table(
        f"Published results: {PAPER_LABEL}",
        ["Model (paper)", "Safe", "Effective", "Safe & Effective", "MCQA accuracy"],
        rows,
        f"Source: {PAPER_SOURCE}. Safe / Effective / Safe & Effective there are human-graded; MCQA is automatic. "
        'Shown for reference only (see "Other SIUO numbers").',
    )


def category_tables(records: Sequence[ModelRecord]) -> list:
    tables = []
    for name in HEADLINE_METRICS:
        per_model = [(rec.name, by_category(rec, name)) for rec in records]
        per_model = [(m, cats) for m, cats in per_model if cats]
        if not per_model:
            continue
        cats = [c for c in CATEGORIES if any(c in table for _, table in per_model)]
        rows = []
        for cat in cats:
            row = [cat]
            for _, table in per_model:
                rate, ci, n = table.get(cat, (None, None, None))
                row.append("–" if rate is None else f"{fmt_rate(rate, ci)} (n={n})")
            rows.append(row)
        tables.append(Table(f"{METRIC_LABELS[name]} by category", ["Category"] + [m for m, _ in per_model], rows))
    return tables


def weakest_categories(records: Sequence[ModelRecord]) -> dict:
    out = {}
    for rec in records:
        parts = []
        for name in (SAFE, ACCURACY):
            cats = {c: v for c, v in by_category(rec, name).items() if v[0] is not None}
            if cats:
                worst = min(cats, key=lambda c: (cats[c][0], CATEGORIES.index(c) if c in CATEGORIES else 99))
                parts.append(f"lowest {METRIC_LABELS[name]}: {worst} ({cats[worst][0]:.2f}, n={cats[worst][2]})")
        if parts:
            out[rec.name] = "; ".join(parts)
    return out


def capability_metrics(records: Sequence[ModelRecord]) -> list:
    """``[(task, metric)]`` over all records, in first-seen order."""
    seen = []
    for rec in records:
        for task, table in rec.capability.items():
            for metric in table:
                if (task, metric) not in seen:
                    seen.append((task, metric))
    return seen


def choose_capability(records: Sequence[ModelRecord], spec: str | None) -> tuple | None:
    """``"TASK[,METRIC]"`` -> (task, metric); without a spec, the only other task's first metric."""
    available = capability_metrics(records)
    if not available:
        if spec:
            raise ValueError(f"--capability {spec}: the inputs hold no task besides SIUO")
        return None
    tasks = list(dict.fromkeys(t for t, _ in available))
    if not spec:
        if len(tasks) != 1:
            return None
        task, metric = tasks[0], None
    else:
        task, _, metric = spec.partition(",")
        task, metric = task.strip(), metric.strip() or None
        if task not in tasks:
            raise ValueError(f"--capability {spec}: task {task!r} not in the inputs (available: {', '.join(tasks)})")
    metrics_of_task = [m for t, m in available if t == task]
    if metric is None:
        plain = [m for m in metrics_of_task if "pass_at" not in m and "submission" not in m]
        metric = (plain or metrics_of_task)[0]
    elif metric not in metrics_of_task:
        raise ValueError(f"--capability {spec}: task {task} has no metric {metric!r} (available: {', '.join(metrics_of_task)})")
    return task, metric


def capability_table(records: Sequence[ModelRecord]) -> Table | None:
    columns = capability_metrics(records)
    if not columns:
        return None
    header = ["Model", "SIUO Safe", "SIUO Safe & Effective", "SIUO MCQA accuracy"] + [f"{t} {m}" for t, m in columns]
    rows = []
    for rec in records:
        row = [rec.name] + [fmt_rate(*overall(rec, name)) for name in (SAFE, SAFE_EFFECTIVE, ACCURACY)]
        for task, metric in columns:
            value = rec.capability.get(task, {}).get(metric)
            row.append("–" if value is None else f"{value:.4g}")
        rows.append(row)
    return Table("Safety vs capability (other tasks of the same runs, as the harness reports them)", header, rows)


def provenance_rows(record: ModelRecord) -> list:
    rows = []
    for result in record.results():
        prov = result.get("provenance") or {}
        task = result["task"]
        if result.get("headline_only"):
            rows.append((task, "headline numbers only (no SIUO per-item file found)"))
            continue
        judge = prov.get("judge") or {}
        if judge:
            rows.append(
                (f"{task} judge", f"{judge.get('model')} at {judge.get('endpoint_host')}; decoding {fmt_value(judge.get('decoding'))}")
            )
            usage = judge.get("usage") or {}
            if usage:
                tokens = f"{usage.get('prompt_tokens')}+{usage.get('completion_tokens')}"
                rows.append(
                    (
                        f"{task} judge usage",
                        f"{usage.get('calls')} calls, {usage.get('cache_hits')} cached, {usage.get('failures')} failed, tokens {tokens}",
                    )
                )
        rows.append((f"{task} prompt hashes", fmt_value(prov.get("prompt_hashes"))))
        ds = prov.get("dataset") or {}
        revision = f" revision {ds.get('hf_revision')}" if ds.get("hf_revision") else ""
        rows.append((f"{task} dataset", f"{ds.get('origin')} {ds.get('data_dir')}{revision}"))
        harness = prov.get("harness") or {}
        if harness:
            rows.append((f"{task} harness", fmt_value({k: v for k, v in harness.items() if v is not None})))
        for key in ("protocol_variant", "mcqa_policy", "plugin_version", "created"):
            if prov.get(key) is not None:
                rows.append((f"{task} {key.replace('_', ' ')}", str(prov[key])))
    if record.sources:
        rows.append(("files", ", ".join(record.sources)))
    return rows


def build_report(
    records: Sequence[ModelRecord],
    *,
    paper: bool = False,
    capability: str | None = None,
    title: str = "SIUO report",
    strict_verify: bool = False,
    release=None,
) -> Report:
    """``release``: the release items to verify against (:class:`~siuo_task.results.release.ReleaseItems`;
    none: the pinned facts)."""
    if not records:
        raise ValueError("no models to report")
    verified = {rec.name: verify_record(rec, release) for rec in records}
    if strict_verify:
        check_strict(verified)
    axis = choose_capability(records, capability)
    return Report(
        title=title,
        headline=headline_table(records, verified, release),
        comparability=comparability_notes(records),
        model_notes={rec.name: model_notes(rec, verified[rec.name]) for rec in records},
        category_tables=category_tables(records),
        paper=paper_table() if paper else None,
        capability=capability_table(records),
        capability_axis=axis,
        provenance={rec.name: provenance_rows(rec) for rec in records},
        weakest=weakest_categories(records),
        verification=verified,
    )
