"""Read SIUO results from wherever they were written, one normalized record per model.

Inputs understood (files or folders, mixed freely):

- a SIUO result JSON, as written by ``siuo score mcqa|gen`` or by a harness run:
  ``{"task", "metrics", "ci95", "items", "provenance", ...}``;
- a harness output folder ``<out>`` (``<out>/<model>/<date>_results.json`` and, beside it, the SIUO
  per-item file ``<date>_siuo_<task>.json``; lm-eval: ``results_<time>.json`` and
  ``siuo_<task>_<start>.json``), one of its model folders, or one harness results file;
- a folder of SIUO result JSONs.

The harness writes its headline numbers per model and run; the SIUO per-item file (intervals, judge
errors, per-category rates, provenance) of that run sits beside it under a name derived from the
harness's results file (:func:`siuo_task.core.layouts.linked_result_path`): the link is followed, nothing
is guessed. Older versions wrote every model's SIUO files into one ``<out>/siuo`` folder; such a
file is used when it is the only one there of that task with the run's model and model arguments,
otherwise the run shows the harness's headline numbers with a note. Other tasks in the same run
(e.g. ``mmmu_val``) are kept as capability metrics.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from siuo_task.core import layouts, schema
from siuo_task.core.layouts import LEGACY_SUBDIR, harness_result_files  # noqa: F401 (harness_result_files: part of this module's API)
from siuo_task.core.schema import GEN_TASKS, GROUPS, TASKS

_MODEL_ARG_KEYS = ("model_version", "pretrained", "model", "model_name", "model_id")


class ReportInputError(ValueError):
    """A result file or folder that cannot be read; the message names the path at fault."""


@dataclass
class ModelRecord:
    """Everything known about one model: its SIUO results and other tasks' headline metrics."""

    name: str
    gen: Optional[dict] = None  # a SIUO generation result dict (siuo_gen or siuo_gen_vote3)
    mcqa: Optional[dict] = None  # a SIUO MCQA result dict
    capability: dict = field(default_factory=dict)  # {task: {metric: value}} for non-SIUO tasks
    sources: list = field(default_factory=list)  # files the numbers came from
    notes: list = field(default_factory=list)  # loading caveats, in plain words
    run_dir: Optional[str] = None  # the lmms-eval model folder, when there is one

    def results(self) -> list:
        return [r for r in (self.gen, self.mcqa) if r is not None]


# ------------------------------------------------------------------------------------------ helpers


def read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ReportInputError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path}: not valid JSON ({exc})") from None


def read_jsonl(path: Path) -> list:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ReportInputError(f"{path}: line {lineno} is not valid JSON ({exc})") from None
    return rows


def read_results_file(path: Path) -> dict:
    """A harness results file as a dict: plain JSON, or through the reader its harness's layout row
    names (inspect's logs: :mod:`siuo_task.harnesses.inspect_ai.logs`)."""
    reader = layouts.reader_of(path)
    if reader is None:
        return read_json(path)
    import importlib

    module, _, function = reader.partition(":")
    try:
        return getattr(importlib.import_module(module), function)(path)
    except FileNotFoundError:
        raise ReportInputError(f"{path}: file not found") from None
    except ValueError as exc:  # the reader's own error names the file and the fix
        raise ReportInputError(str(exc)) from None


def model_runs(model_dir: Path, only: Optional[Path] = None) -> list:
    """``[(model name, [HarnessRun, ...])]`` of a harness model folder, oldest file first: one group for a
    folder of one model (lmms-eval, lm-eval), one per model for a folder every model's runs share
    (inspect's log folder, :attr:`siuo_task.core.layouts.HarnessLayout.shared_folder`)."""
    runs = [HarnessRun(path, read_results_file(path)) for path in ([only] if only is not None else harness_result_files(model_dir))]
    for run in runs:
        if not is_harness_results(run.results):
            raise ReportInputError(f"{run.path}: not a harness results file (no 'results'/'config')")
    if not runs or not any(layouts.shares_folder(run.path, run.results) for run in runs):
        return [(runs[-1].model_name, runs)] if runs else []
    groups: dict = {}
    for run in runs:
        if run.task_names():  # an inspect log still being written has no tasks yet
            groups.setdefault(run.model_name, []).append(run)
    return list(groups.items())


is_siuo_result = schema.is_result


def is_harness_results(payload) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("results"), dict) and "config" in payload


def is_gen(result: dict) -> bool:
    return result.get("task") in GEN_TASKS


def parse_model_args(model_args) -> dict:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}`` (dicts pass through; anything else -> ``{}``)."""
    if isinstance(model_args, dict):
        return {str(k): str(v) for k, v in model_args.items()}
    if not isinstance(model_args, str):
        return {}
    out = {}
    for part in model_args.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def same_model_args(a, b) -> bool:
    """Equal model arguments, ignoring the values of secret-looking keys (redacted in SIUO files)."""
    pa, pb = parse_model_args(a), parse_model_args(b)
    if set(pa) != set(pb):
        return False
    return all(schema.is_secret_key(k) or pa[k] == pb[k] for k in pa)


def model_name_from_args(model_args) -> Optional[str]:
    args = parse_model_args(model_args)
    for key in _MODEL_ARG_KEYS:
        if args.get(key):
            return args[key].rstrip("/").split("/")[-1] if key == "pretrained" and "/" in args[key] else args[key]
    return None


def model_name_for(result: dict, path: Path) -> str:
    """The model a SIUO result file belongs to, from its provenance, else from file names."""
    harness = result.get("provenance", {}).get("harness") or {}
    name = model_name_from_args(harness.get("model_args"))
    if name:
        return name
    source = harness.get("input")
    stem = Path(source).stem if isinstance(source, str) else path.stem
    match = re.match(r"^siuo_(?:gen|mcqa)(?:_vote3)?[-_](.+?)(?:-gpteval.*)?$", stem)
    if match:
        return match.group(1)
    return harness.get("model") or stem


def _created(result: dict) -> Optional[_dt.datetime]:
    value = result.get("provenance", {}).get("created")
    try:
        stamp = _dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=_dt.timezone.utc)


def headline_metrics(task_results: dict) -> dict:
    """``{"acc,none": 0.4, "acc_stderr,none": ...}`` -> ``{"acc": 0.4}`` (numbers only, no stderr)."""
    out = {}
    for key, value in task_results.items():
        if key == "alias" or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        metric, _, filt = key.partition(",")
        if "_stderr" in metric:
            continue
        out[metric if filt in ("", "none") else key] = value
    return out


def answers_by_qid(result: dict) -> dict:
    """``{question_id: answers}`` from a SIUO result (lists of answers for gen, one answer for MCQA)."""
    if is_gen(result):
        return {item["question_id"]: list(item.get("answers") or []) for item in result.get("items", [])}
    return {item["question_id"]: item.get("response") for item in result.get("items", [])}


def answers_from_samples(path: Path) -> dict:
    """``{question_id: answers}`` from an lmms-eval ``*_samples_<task>.jsonl`` of a SIUO task."""
    out = {}
    for row in read_jsonl(path):
        record = next(
            (v for v in row.values() if isinstance(v, dict) and "question_id" in v and ("answers" in v or "response" in v)),
            None,
        )
        if record is None:
            raise ReportInputError(f"{path}: doc_id {row.get('doc_id')} has no SIUO record (question_id and answers)")
        out[record["question_id"]] = list(record["answers"]) if "answers" in record else record["response"]
    return out


# ------------------------------------------------------------------------------------ lmms-eval runs


@dataclass
class HarnessRun:
    """One harness results file of a model folder (:mod:`siuo_task.core.layouts`)."""

    path: Path
    results: dict

    @property
    def model_name(self) -> str:
        config = self.results.get("config") or {}
        return (
            self.results.get("model_name")
            or model_name_from_args(config.get("model_args"))
            or self.results.get("model_name_sanitized")
            or self.path.parent.name
        )

    def task_names(self) -> list:
        return [t for t in self.results.get("results", {}) if t not in GROUPS]

    def samples_path(self, task: str) -> Optional[Path]:
        """The harness's logged samples of ``task`` beside the results file, when it wrote them."""
        path = layouts.samples_file(self.path, self.results, task)
        return path if path is not None and path.is_file() else None


def siuo_files_in(siuo_dir: Path) -> list:
    """``[(path, result)]`` of every SIUO result file in a folder (other JSON files ignored)."""
    out = []
    if not siuo_dir.is_dir():
        return out
    for path in sorted(siuo_dir.glob("*.json")):
        payload = read_json(path)
        if is_siuo_result(payload):
            out.append((path, payload))
    return out


def pair_siuo_file(run: HarnessRun, task: str, legacy_files: Sequence = ()) -> tuple:
    """The SIUO per-item file this run wrote for ``task``: ``(path, result, note)``.

    The file the run's results file names (:func:`siuo_task.core.layouts.linked_result_path`); for runs
    of older versions, the one file of ``legacy_files`` (``<out>/siuo``) with this task, harness
    model and model arguments. ``(None, None, note)`` when there is none, or several.
    """
    linked = layouts.linked_result_path(run.path, run.results, task)
    if linked is not None and linked.is_file():
        result = read_json(linked)
        if not is_siuo_result(result) or result.get("task") != task:
            raise ReportInputError(f"{linked}: named after {run.path.name} for {task}, but not a SIUO {task} result")
        return linked, result, None
    config = run.results.get("config") or {}
    matches = []
    for path, result in legacy_files:
        harness = result["provenance"].get("harness") or {}
        if (result.get("task") == task and harness.get("name") in layouts.LAYOUTS
                and harness.get("model") in (None, config.get("model"))
                and same_model_args(harness.get("model_args"), config.get("model_args"))):
            matches.append((path, result))
    if len(matches) == 1:
        return matches[0][0], matches[0][1], None
    where = linked.name if linked is not None else f"a file named after {run.path.name}"
    if matches:
        return None, None, (f"{task}: no {where} beside the run, and {len(matches)} old-layout files in "
                            f"{matches[0][0].parent} match its model arguments ({', '.join(p.name for p, _ in matches)}); "
                            "none is chosen")
    return None, None, f"{task}: no SIUO per-item file {where} beside the run {run.path.name}"


def _headline_only(task: str, headline: dict, n: Optional[int]) -> dict:
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


def load_harness_model_dir(model_dir: Path, only: Optional[Path] = None) -> list:
    """Records for one harness model folder (several when it holds several gen variants, or several
    models' runs: inspect's log folder)."""
    if only is None and not harness_result_files(model_dir):
        raise ReportInputError(f"{model_dir}: no harness results files here (lmms-eval *_results.json, lm-eval results_*.json, inspect logs)")
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
                        notes.append(
                            f"{task}: {path.name} and {run.path.name} disagree on {', '.join(differs)}; using the per-item file"
                        )
                siuo[task] = (result, path, notes, run.path)
            else:
                capability[task] = headline_metrics(run.results["results"][task])
                sources.append(str(run.path))
    return _records_from_tasks(name, siuo, capability, sources, str(model_dir))


def _records_from_tasks(name: str, siuo: dict, capability: dict, sources: list, run_dir: Optional[str]) -> list:
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


def _classify_dir(path: Path) -> str:
    if harness_result_files(path):
        return "model_dir"
    if any(harness_result_files(child) for child in path.iterdir() if child.is_dir() and child.name != LEGACY_SUBDIR):
        return "run_root"
    if siuo_files_in(path) or siuo_files_in(path / LEGACY_SUBDIR):
        return "siuo_dir"
    return "unknown"


def _load_path(path: Path, label: Optional[str]) -> list:
    """Records (possibly several models) from one input path."""
    if path.is_dir():
        kind = _classify_dir(path)
        if kind == "model_dir":
            records = load_harness_model_dir(path)
        elif kind == "run_root":
            records = []
            for child in sorted(path.iterdir()):
                if child.is_dir() and child.name != LEGACY_SUBDIR and harness_result_files(child):
                    records.extend(load_harness_model_dir(child))
        elif kind == "siuo_dir":
            folder = path if siuo_files_in(path) else path / LEGACY_SUBDIR
            records = records_from_siuo_results([(p, r) for p, r in siuo_files_in(folder)])
        else:
            raise ReportInputError(
                f"{path}: no SIUO results here (expected an lmms-eval output folder with <model>/*_results.json, "
                "or SIUO result JSONs from `siuo score`)"
            )
    elif path.is_file():
        payload = read_results_file(path)
        if is_siuo_result(payload):
            records = records_from_siuo_results([(path, payload)])
        elif is_harness_results(payload):
            records = load_harness_model_dir(path.parent, only=path)
        else:
            raise ReportInputError(
                f"{path}: neither a SIUO result (task/metrics/provenance) nor an lmms-eval results file (results/config)"
            )
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
            if (_created(old) or _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)) > (
                _created(result) or _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)
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
            raise ReportInputError(f"model {record.name}: no SIUO results found in {', '.join(record.sources) or 'the inputs'}")
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


# ------------------------------------------------------------------------------ run folders (export)


def siuo_files_for_model_dir(model_dir: Path) -> list:
    """``[(path, result)]``: the SIUO per-item files the runs of a harness model folder link to."""
    legacy = siuo_files_in(model_dir.parent / LEGACY_SUBDIR)
    out = []
    for path in harness_result_files(model_dir):
        run = HarnessRun(path, read_results_file(path))
        for task in run.task_names():
            if task in TASKS:
                found, result, _ = pair_siuo_file(run, task, legacy)
                if result is not None:
                    out.append((found, result))
    return out


def siuo_answers_for_model_dir(model_dir: Path, runs: Optional[list] = None) -> dict:
    """``{task: (answers_by_qid, source path, run)}`` for the SIUO tasks of a harness model folder (or
    of ``runs``, one model's group of :func:`model_runs`).

    Answers come from the logged samples when present (the model's own output), else from the
    run's SIUO per-item file. The latest run holding a task wins.
    """
    if runs is None:
        runs = [HarnessRun(path, read_results_file(path)) for path in harness_result_files(model_dir)]
    legacy = siuo_files_in(model_dir.parent / LEGACY_SUBDIR)
    out = {}
    for run in runs:
        for task in run.task_names():
            if task not in TASKS:
                continue
            samples = run.samples_path(task)
            if samples is not None:
                out[task] = (answers_from_samples(samples), samples, run)
                continue
            path, result, _ = pair_siuo_file(run, task, legacy)
            if result is not None:
                out[task] = (answers_by_qid(result), path, run)
    return out


def model_dirs(run_dir: Path) -> list:
    """The lmms-eval model folders at or under ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(f"{run_dir}: not a folder")
    if harness_result_files(run_dir):
        return [run_dir]
    found = [c for c in sorted(run_dir.iterdir()) if c.is_dir() and c.name != LEGACY_SUBDIR and harness_result_files(c)]
    if not found:
        raise ReportInputError(f"{run_dir}: not an lmms-eval output folder (no <model>/*_results.json)")
    return found
