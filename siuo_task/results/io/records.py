"""Model records from whatever the user gives ``siuo report`` / ``compare``: SIUO result files,
folders of them, harness output or model folders, harness results files (one record per model)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from siuo_task.core import schema
from siuo_task.core.layouts import LEGACY_SUBDIR, harness_result_files
from siuo_task.core.schema import GEN_TASKS, TASKS
from siuo_task.results.io.files import (
    ReportInputError,
    checked_result,
    created,
    headline_metrics,
    is_gen,
    is_harness_results,
    looks_like_siuo_result,
    model_name_for,
    read_results_file,
)
from siuo_task.results.io.runs import _subfolders, model_runs, pair_siuo_file, siuo_files_in


@dataclass
class ModelRecord:
    """Everything known about one model: its SIUO results and other tasks' headline metrics."""

    name: str
    gen: dict | None = None  # a SIUO generation result dict (siuo_gen or siuo_gen_vote3)
    mcqa: dict | None = None  # a SIUO MCQA result dict
    capability: dict = field(default_factory=dict)  # {task: {metric: value}} for non-SIUO tasks
    sources: list = field(default_factory=list)  # files the numbers came from
    notes: list = field(default_factory=list)  # loading caveats, in plain words
    run_dir: str | None = None  # the harness model folder, when there is one

    def results(self) -> list:
        return [r for r in (self.gen, self.mcqa) if r is not None]


def _headline_only(task: str, headline: dict, n: int | None) -> dict:
    """A result dict holding only the harness's headline numbers (no per-item file was found)."""
    names = schema.METRICS[task]
    return {
        "task": task,
        "metrics": {name: headline.get(name) for name in names},
        "ci95": {},
        "counts": {"n": n},
        "by_category": {},
        "items": [],
        "provenance": {},
        "headline_only": True,
    }


def load_harness_model_dir(model_dir: Path, only: Path | None = None) -> list:
    """Records for one harness model folder (several when it holds several gen variants, or several
    models' runs: inspect's log folder)."""
    if only is None and not harness_result_files(model_dir):
        raise ReportInputError(
            f"{model_dir}: no harness results files here (lmms-eval *_results.json, lm-eval results_*.json, inspect logs)"
        )
    legacy = siuo_files_in(model_dir.parent / LEGACY_SUBDIR)
    records = []
    for name, runs in model_runs(model_dir, only):
        records.extend(_records_for_runs(name, runs, legacy, model_dir))
    return records


def _records_for_runs(name: str, runs: list, legacy: list, model_dir: Path) -> list:
    siuo: dict = {}  # task -> (result, source path, notes), the latest run wins
    capability: dict = {}
    sources: list = []
    for run in runs:  # oldest first: later runs override
        for task in run.task_names():
            if task in TASKS:
                path, result, missing = pair_siuo_file(run, task, legacy)
                notes = []
                headline = headline_metrics(run.results["results"][task])
                if result is None:
                    n = ((run.results.get("n-samples") or {}).get(task) or {}).get("effective")
                    result = _headline_only(task, headline, n)
                    notes.append(f"{missing}; showing the harness's headline numbers only (no intervals, judge errors or categories)")
                    path = run.path
                else:
                    differs = [m for m, v in headline.items() if m in result["metrics"] and result["metrics"][m] != v]
                    if differs:
                        notes.append(f"{task}: {path.name} and {run.path.name} disagree on {', '.join(differs)}; using the per-item file")
                siuo[task] = (result, path, notes, run.path)
            else:
                capability[task] = headline_metrics(run.results["results"][task])
                sources.append(str(run.path))
    return _records_from_tasks(name, siuo, capability, sources, str(model_dir))


def _records_from_tasks(name: str, siuo: dict, capability: dict, sources: list, run_dir: str | None) -> list:
    gen_tasks = [t for t in GEN_TASKS if t in siuo]
    primary = ModelRecord(name=name, capability=capability, run_dir=run_dir)
    primary.sources.extend(dict.fromkeys(sources))
    records = [primary]

    def attach(record: ModelRecord, task: str) -> None:
        result, path, notes, harness_path = siuo[task]
        if is_gen(result):
            record.gen = result
        else:
            record.mcqa = result
        for p in (path, harness_path):
            if p is not None and str(p) not in record.sources:
                record.sources.append(str(p))
        record.notes.extend(notes)

    if gen_tasks:
        attach(primary, gen_tasks[0])
    if schema.MCQA_TASK in siuo:
        attach(primary, schema.MCQA_TASK)
    for task in gen_tasks[1:]:  # a second gen variant of the same model gets its own row
        extra = ModelRecord(name=f"{name} ({task})", run_dir=run_dir)
        attach(extra, task)
        records.append(extra)
    return records


# --------------------------------------------------------------------------------------- entry point


# --------------------------------------------------------------------------------------- entry point


def _classify_dir(path: Path) -> str:
    if harness_result_files(path):
        return "model_dir"
    if any(harness_result_files(child) for child in _subfolders(path)):
        return "run_root"
    if siuo_files_in(path) or siuo_files_in(path / LEGACY_SUBDIR):
        return "siuo_dir"
    return "unknown"


def _load_path(path: Path, label: str | None) -> list:
    """Records (possibly several models) from one input path."""
    if path.is_dir():
        kind = _classify_dir(path)
        if kind == "model_dir":
            records = load_harness_model_dir(path)
        elif kind == "run_root":
            records = []
            for child in _subfolders(path):
                if harness_result_files(child):
                    records.extend(load_harness_model_dir(child))
        elif kind == "siuo_dir":
            folder = path if siuo_files_in(path) else path / LEGACY_SUBDIR
            records = records_from_siuo_results([(p, r) for p, r in siuo_files_in(folder)])
        else:
            raise ReportInputError(
                f"{path}: no SIUO results here (expected a harness output folder with <model>/*_results.json, "
                "or SIUO result JSONs from `siuo score`)"
            )
    elif path.is_file():
        payload = read_results_file(path)
        if looks_like_siuo_result(payload):
            records = records_from_siuo_results([(path, checked_result(path, payload))])
        elif is_harness_results(payload):
            records = load_harness_model_dir(path.parent, only=path)
        else:
            raise ReportInputError(f"{path}: neither a SIUO result (task/metrics/provenance) nor a harness results file (results/config)")
    else:
        raise ReportInputError(f"{path}: no such file or folder")
    if label:
        if len(records) != 1:
            raise ReportInputError(f"{label}={path}: a label needs exactly one model, found {len(records)}")
        records[0].name = label
    return records


def records_from_siuo_results(pairs: Iterable) -> list:
    """Group loose SIUO result files by model (a gen and an MCQA result of one model share a record)."""
    by_model: dict = {}
    for path, result in pairs:
        name = model_name_for(result, path)
        task = result["task"]
        slot = by_model.setdefault(name, {})
        if task in slot:  # several results for one model and task: keep the newest
            old = slot[task][0]
            if (created(old) or _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)) > (
                created(result) or _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)
            ):
                continue
        slot[task] = (result, path, [], None)
    records = []
    for name, tasks in by_model.items():
        records.extend(_records_from_tasks(name, tasks, {}, [], None))
    return records


def split_label(arg: str) -> tuple:
    """``"LABEL=PATH"`` -> ``(LABEL, PATH)`` when PATH exists and LABEL has no path separator."""
    if "=" in arg and not Path(arg).exists():
        label, path = arg.split("=", 1)
        if label and "/" not in label and Path(path).exists():
            return label, path
    return None, arg


def load_records(paths: Sequence[str]) -> list:
    """One :class:`ModelRecord` per model over all inputs; the same model from two inputs is merged
    when the tasks don't overlap, otherwise the later input gets a distinguishing suffix."""
    if not paths:
        raise ReportInputError("no result files or folders given")
    records: list = []
    for arg in paths:
        label, raw = split_label(arg)
        for record in _load_path(Path(raw), label):
            _merge_into(records, record)
    for record in records:
        if not record.results() and not record.capability:
            where = ", ".join(record.sources) or record.run_dir or "the inputs"
            raise ReportInputError(f"model {record.name}: no SIUO results found in {where}")
    return records


def _merge_into(records: list, record: ModelRecord) -> None:
    for other in records:
        if other.name != record.name:
            continue
        overlap = (other.gen is not None and record.gen is not None) or (other.mcqa is not None and record.mcqa is not None)
        if not overlap:
            other.gen = other.gen or record.gen
            other.mcqa = other.mcqa or record.mcqa
            other.capability.update(record.capability)
            other.sources.extend(s for s in record.sources if s not in other.sources)
            other.notes.extend(record.notes)
            return
    taken = {r.name for r in records}
    if record.name in taken:
        i = 2
        while f"{record.name} #{i}" in taken:
            i += 1
        record.name = f"{record.name} #{i}"
    records.append(record)
