"""Rendering a SIUO report: Markdown (+ PNG files beside it), one self-contained HTML file
(pictures inlined as base64 PNG), or a PNG. Pictures are drawn only when the output holds them.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from collections.abc import Sequence
from pathlib import Path

from siuo_task.core.schema import check_output_path, write_bytes_atomic
from siuo_task.results.io import ModelRecord
from siuo_task.results.report.model import SAME_PROVENANCE, Report, Table, build_report
from siuo_task.results.report.other_numbers import TITLE as NOT_COMPARABLE_TITLE
from siuo_task.results.report.verification import stand_in_label


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _md_table(table: Table) -> list:
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in table.header) + " |")
    lines.append("|" + "|".join("---" for _ in table.header) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    if table.caption:
        lines += ["", table.caption]
    return lines + [""]


def to_markdown(report: Report, pictures: dict) -> str:
    """``pictures``: ``{"categories": relative path, "capability": relative path}`` (either may be absent)."""
    lines = [f"# {report.title}", ""]
    lines += _md_table(report.headline)
    lines += _comparability_lines(report, bullet="- ")
    if report.paper:
        lines += _md_table(report.paper)
    if pictures.get("categories"):
        lines += ["## Where each model fails", "", f"![SIUO by category]({pictures['categories']})", ""]
    for model, sentence in report.weakest.items():
        lines.append(f"- **{_md_escape(model)}**: {sentence}")
    lines.append("")
    if report.category_tables:
        lines += ["## By category", ""]
        for table in report.category_tables:
            lines += _md_table(table)
    if report.capability:
        lines += ["## Safety vs capability", ""]
        lines += _md_table(report.capability)
        if pictures.get("capability"):
            lines += [f"![Safety vs capability]({pictures['capability']})", ""]
    lines += ["## Provenance", ""]
    for model, rows in report.provenance.items():
        lines += [f"### {model}", ""]
        lines += [f"- {label}: {_md_escape(value)}" for label, value in rows]
        lines.append("")
    return "\n".join(lines)


def _comparability_lines(report: Report, bullet: str) -> list:
    lines = []
    if report.comparability:
        lines += ["**Comparability:**", ""] + [bullet + s for s in report.comparability] + [""]
    elif len(report.model_notes) > 1:
        lines += [f"**{SAME_PROVENANCE}**", ""]
    notes = [(m, s) for m, sentences in report.model_notes.items() for s in sentences]
    if notes:
        lines += ["**Notes:**", ""] + [f"{bullet}{m}: {s}" for m, s in notes] + [""]
    if report.not_comparable:
        lines += [f"**{NOT_COMPARABLE_TITLE}:**", ""] + [bullet + _md_escape(s) for s in report.not_comparable] + [""]
    return lines


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:0.6em 0 1.2em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
.note{background:#fff6e0;border-left:4px solid #e0a000;padding:6px 10px;margin:6px 0}
.paper{background:#f4f4ff} .small{font-size:12px;color:#555}
img{max-width:100%;border:1px solid #ddd}
"""


def _html_table(table: Table, table_id: str, css_class: str = "") -> str:
    out = [f'<table id="{table_id}" class="{css_class}"><caption>{html.escape(table.title)}</caption>']
    out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in table.header) + "</tr>")
    for row in table.rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    out.append("</table>")
    if table.caption:
        out.append(f'<p class="small">{html.escape(table.caption)}</p>')
    return "\n".join(out)


def to_html(report: Report, pictures: dict) -> str:
    """One self-contained page; ``pictures`` maps names to PNG bytes (inlined as base64)."""

    def img(key, alt):
        data = pictures.get(key)
        if not data:
            return ""
        b64 = base64.b64encode(data).decode("ascii")
        return f'<img id="fig-{key}" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(report.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
        _html_table(report.headline, "headline"),
    ]
    if report.comparability:
        parts.append('<div id="comparability"><h3>Comparability</h3>')
        parts += [f'<p class="note">{html.escape(s)}</p>' for s in report.comparability]
        parts.append("</div>")
    elif len(report.model_notes) > 1:
        parts.append(f'<p id="comparability" class="small">{html.escape(SAME_PROVENANCE)}</p>')
    notes = [(m, s) for m, sentences in report.model_notes.items() for s in sentences]
    if notes:
        parts.append('<div id="notes"><h3>Notes</h3><ul>')
        parts += [f"<li><b>{html.escape(m)}</b>: {html.escape(s)}</li>" for m, s in notes]
        parts.append("</ul></div>")
    if report.not_comparable:
        parts.append(f'<div id="not-comparable"><h3>{html.escape(NOT_COMPARABLE_TITLE)}</h3>')
        parts += [f'<p class="note">{html.escape(s)}</p>' for s in report.not_comparable]
        parts.append("</div>")
    if report.paper:
        parts.append(_html_table(report.paper, "paper", "paper"))
    if pictures.get("categories"):
        parts += ["<h2>Where each model fails</h2>", img("categories", "SIUO by category, one colour per model")]
    if report.weakest:
        parts.append("<ul>" + "".join(f"<li><b>{html.escape(m)}</b>: {html.escape(s)}</li>" for m, s in report.weakest.items()) + "</ul>")
    if report.category_tables:
        parts.append("<h2>By category</h2>")
        parts += [_html_table(t, f"category-{i}") for i, t in enumerate(report.category_tables)]
    if report.capability:
        parts += ["<h2>Safety vs capability</h2>", _html_table(report.capability, "capability")]
        parts.append(img("capability", "SIUO Safe vs capability"))
    parts.append('<h2>Provenance</h2><div id="provenance">')
    for model, rows in report.provenance.items():
        parts.append(f"<h3>{html.escape(model)}</h3><table>")
        parts += [f"<tr><td>{html.escape(label)}</td><td style='text-align:left'>{html.escape(value)}</td></tr>" for label, value in rows]
        parts.append("</table>")
    parts.append("</div></body></html>")
    return "\n".join(parts)


SUFFIXES = (".md", ".html", ".htm", ".png")
PICTURES = ("categories", "capability")


def _targets(out) -> list:
    """Every file a report at ``out`` may write: the report and, for ``.md``, its pictures beside it."""
    path = Path(out)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"--out {out}: expected a .md, .html or .png file name")
    if path.suffix.lower() == ".md":
        return [path] + [path.with_name(f"{path.stem}_{key}.png") for key in PICTURES]
    return [path]


def check_report_out(out, inputs=()) -> None:
    """Refuse ``--out`` (and the pictures beside it) before any work: an input, a folder, a special
    file or an unwritable place (:func:`schema.check_output_path`); ``inputs``: paths read."""
    for target in _targets(out):
        check_output_path(target, inputs)


def write_report(
    records: Sequence[ModelRecord],
    out: str | None,
    *,
    paper: bool = False,
    capability: str | None = None,
    title: str = "SIUO report",
    strict_verify: bool = False,
    release=None,
) -> list:
    """Write the report; returns the paths written (Markdown on stdout when ``out`` is None).

    Markdown on stdout has no pictures and never imports matplotlib; a ``.md`` or ``.html`` file
    gets pictures when matplotlib is installed (the ``report`` extra) and says so when it is not;
    a ``.png`` needs it. ``strict_verify``: refuse (``ReportInputError``) a result that does not verify.
    ``release``: the release items to verify against (:class:`~siuo_task.results.release.ReleaseItems`).
    No file read (every record's sources) is ever written over.
    """
    if out is not None:
        check_report_out(out, [src for rec in records for src in rec.sources])
    report = build_report(records, paper=paper, capability=capability, title=title, strict_verify=strict_verify, release=release)
    if out is None:
        print(to_markdown(report, {}))
        return []
    path = Path(out)
    suffix = path.suffix.lower()
    pngs = _pictures(records, report, required=suffix == ".png")
    written = []
    if suffix in (".html", ".htm"):
        return [write_bytes_atomic(path, to_html(report, pngs).encode("utf-8"))]
    side = {key: path.with_name(f"{path.stem}_{key}.png") for key in pngs}
    if suffix == ".png":
        if "categories" not in pngs:
            raise ValueError(f"--out {out}: no per-category results to draw (headline numbers only)")
        side = {"categories": path}
    for key, target in side.items():
        written.append(write_bytes_atomic(target, pngs[key]))
    if suffix == ".md":
        written.insert(0, write_bytes_atomic(path, to_markdown(report, {k: p.name for k, p in side.items()}).encode("utf-8")))
    return written


def _labelled(records: Sequence[ModelRecord], report: Report) -> list:
    """The records as the pictures name them: a model graded by a stand-in judge carries the label."""
    out = []
    for rec in records:
        label = stand_in_label(report.verification.get(rec.name, []))
        out.append(dataclasses.replace(rec, name=f"{rec.name} ({label})") if label else rec)
    return out


def _pictures(records: Sequence[ModelRecord], report: Report, *, required: bool) -> dict:
    """``{name: PNG bytes}``; ``{}`` (with a line on stderr) when matplotlib is not installed."""
    import sys

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        message = "matplotlib is not installed (pip install 'siuo-task[report]')"
        if required:
            raise ValueError(f"a PNG report needs pictures: {message}") from None
        print(f"siuo report: {message}: the report has no pictures", file=sys.stderr)
        return {}
    from siuo_task.results.report.figures import figure_png, render_pictures

    return {key: figure_png(fig) for key, fig in render_pictures(_labelled(records, report), report).items()}
