"""Pictures of a SIUO report (matplotlib, Agg canvas, no pyplot state).

The only module of the report that imports matplotlib (the ``report`` extra), and only inside the
functions that draw: a Markdown or HTML report without pictures never needs it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from siuo_task.core.data import CATEGORIES
from siuo_task.core.schema import HEADLINE_METRICS, SAFE
from siuo_task.results.io import ModelRecord
from siuo_task.results.report.model import METRIC_LABELS, Report, by_category, overall
from siuo_task.results.report.other_numbers import SHORT as NOT_COMPARABLE_SHORT


def model_colours(names: Sequence[str]) -> dict:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def category_figure(records: Sequence[ModelRecord]):
    """Per-category horizontal bars, one colour per model, one panel per metric, 95% intervals as
    error bars. Returns a ``matplotlib.figure.Figure`` (Agg canvas) or ``None`` without category data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = []
    for name in HEADLINE_METRICS:
        data = [(rec.name, by_category(rec, name)) for rec in records]
        if any(table for _, table in data):
            panels.append((name, data))
    if not panels:
        return None
    cats = [c for c in CATEGORIES if any(c in table for _, data in panels for _, table in data)]
    names = [rec.name for rec in records]
    colours = model_colours(names)
    n_models = len(names)
    height = max(3.0, 0.28 * len(cats) * max(n_models, 2) + 1.6)
    fig = Figure(figsize=(4.0 * len(panels) + 2.6, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    bar_h = 0.8 / n_models
    handles = {}
    for ax, (metric, data) in zip(axes, panels):
        for i, (model, table) in enumerate(data):
            ys, xs, lo, hi = [], [], [], []
            for j, cat in enumerate(cats):
                rate, ci, _ = table.get(cat, (None, None, None))
                if rate is None:
                    continue
                ys.append(j - 0.4 + bar_h * (i + 0.5))
                xs.append(rate)
                lo.append(rate - ci[0] if ci else 0.0)
                hi.append(ci[1] - rate if ci else 0.0)
            if xs:
                bars = ax.barh(
                    ys,
                    xs,
                    height=bar_h * 0.9,
                    color=colours[model],
                    xerr=[lo, hi],
                    error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"},
                )
                handles.setdefault(model, bars)
        ax.set_title(METRIC_LABELS[metric])
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of items")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(cats)))
    axes[0].set_yticklabels(cats)
    axes[0].invert_yaxis()  # shared y axis: invert once, first category on top
    ordered = [m for m in names if m in handles]
    fig.suptitle("SIUO by category, 95% intervals as error bars (short bars: where a model fails)", fontsize=11)
    fig.legend([handles[m] for m in ordered], ordered, loc="outside right center", title="model")  # the bottom holds the note
    fig.supxlabel(_wrap(NOT_COMPARABLE_SHORT, fig), fontsize=7, color="#555555")  # the PNG report carries the note too
    return fig


def _wrap(text: str, fig) -> str:
    import textwrap

    return textwrap.fill(text, width=max(60, int(fig.get_figwidth() * 15)))  # about 15 characters per inch at 7 pt


def capability_figure(records: Sequence[ModelRecord], task: str, metric: str):
    """SIUO Safe rate (95% interval as error bars) against one capability metric, one point per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colours = model_colours([rec.name for rec in records])
    fig = Figure(figsize=(6.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    plotted = []
    for rec in records:
        x = rec.capability.get(task, {}).get(metric)
        y, ci = overall(rec, SAFE)
        if x is None or y is None:
            continue
        yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
        ax.errorbar([x], [y], yerr=yerr, fmt="o", color=colours[rec.name], capsize=4, label=rec.name, markersize=7)
        ax.annotate(rec.name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        plotted.append(rec.name)
    if not plotted:
        return None
    ax.set_xlabel(f"{task} {metric} (capability, as reported by the harness)")
    ax.set_ylabel("SIUO Safe (%, 95% interval)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(title="model", fontsize=8)
    ax.set_title("Safety vs capability")
    return fig


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def render_pictures(records: Sequence[ModelRecord], report: Report) -> dict:
    """``{"categories": Figure, "capability": Figure}`` (entries without data left out)."""
    figures = {}
    fig = category_figure(records)
    if fig is not None:
        figures["categories"] = fig
    if report.capability_axis:
        fig = capability_figure(records, *report.capability_axis)
        if fig is not None:
            figures["capability"] = fig
    return figures
