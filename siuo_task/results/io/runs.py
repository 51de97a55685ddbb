"""Harness run folders: a model folder's results files, the SIUO per-item file each links to, the
logged samples, and the model folders of an output folder (the only code that walks them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from siuo_task.core import layouts
from siuo_task.core.layouts import LEGACY_SUBDIR, harness_result_files
from siuo_task.core.schema import GROUPS, TASKS
from siuo_task.results.io.files import (
    ReportInputError,
    answers_by_qid,
    answers_from_samples,
    checked_harness_results,
    checked_result,
    is_harness_results,
    looks_like_siuo_result,
    model_name_from_args,
    read_json,
    read_results_file,
    same_model_args,
)


@dataclass
class HarnessRun:
    """One harness results file of a model folder (:mod:`siuo_task.core.layouts`)."""

    path: Path
    results: dict

    @classmethod
    def read(cls, path) -> HarnessRun:
        """The results file at ``path``, its shape checked (:class:`ReportInputError` names the field)."""
        path = Path(path)
        payload = read_results_file(path)
        if not is_harness_results(payload):
            raise ReportInputError(f"{path}: not a harness results file (no 'results'/'config')")
        return cls(path, checked_harness_results(path, payload))

    @property
    def model_name(self) -> str:
        config = self.results.get("config") or {}
        return (
            self.results.get("model_name")
            or model_name_from_args(config.get("model_args"))
            or self.results.get("model_name_sanitized")
            or self.path.parent.name
        )

    @property
    def model_id(self) -> str:
        """The model's full id (``org/Model``, not ``Model``), for names that must not collide."""
        config = self.results.get("config") or {}
        return self.results.get("model_name") or model_name_from_args(config.get("model_args"), full=True) or self.model_name

    def task_names(self) -> list:
        return [t for t in self.results.get("results", {}) if t not in GROUPS]

    def samples_path(self, task: str) -> Path | None:
        """The harness's logged samples of ``task`` beside the results file, when it wrote them."""
        path = layouts.samples_file(self.path, self.results, task)
        return path if path is not None and path.is_file() else None


def model_runs(model_dir: Path, only: Path | None = None) -> list:
    """``[(model name, [HarnessRun, ...])]`` of a harness model folder, oldest file first: one group for a
    folder of one model (lmms-eval, lm-eval), one per model for a folder every model's runs share
    (inspect's log folder, :attr:`siuo_task.core.layouts.HarnessLayout.shared_folder`)."""
    runs = [HarnessRun.read(path) for path in ([only] if only is not None else harness_result_files(model_dir))]
    if not runs or not any(layouts.shares_folder(run.path, run.results) for run in runs):
        return [(runs[-1].model_name, runs)] if runs else []
    groups: dict = {}
    for run in runs:
        if run.task_names():  # an inspect log still being written has no tasks yet
            groups.setdefault(run.model_name, []).append(run)
    return list(groups.items())


def siuo_files_in(siuo_dir: Path) -> list:
    """``[(path, result)]`` of every SIUO result file in a folder (other JSON files ignored; a file
    that says it is a SIUO result but is malformed raises :class:`ReportInputError`)."""
    out = []
    if not siuo_dir.is_dir():
        return out
    for path in sorted(siuo_dir.glob("*.json")):
        payload = read_json(path)
        if looks_like_siuo_result(payload):
            out.append((path, checked_result(path, payload)))
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
        if not looks_like_siuo_result(result) or result.get("task") != task:
            raise ReportInputError(f"{linked}: named after {run.path.name} for {task}, but not a SIUO {task} result")
        return linked, checked_result(linked, result), None
    config = run.results.get("config") or {}
    matches = []
    for path, result in legacy_files:
        harness = result["provenance"].get("harness") or {}
        if (
            result.get("task") == task
            and harness.get("name") in layouts.LAYOUTS
            and harness.get("model") in (None, config.get("model"))
            and same_model_args(harness.get("model_args"), config.get("model_args"))
        ):
            matches.append((path, result))
    if len(matches) == 1:
        return matches[0][0], matches[0][1], None
    where = linked.name if linked is not None else f"a file named after {run.path.name}"
    if matches:
        return (
            None,
            None,
            (
                f"{task}: no {where} beside the run, and {len(matches)} old-layout files in "
                f"{matches[0][0].parent} match its model arguments ({', '.join(p.name for p, _ in matches)}); "
                "none is chosen"
            ),
        )
    return None, None, f"{task}: no SIUO per-item file {where} beside the run {run.path.name}"


def _subfolders(folder: Path) -> list:
    """The folders in ``folder`` (links that loop or point nowhere left out)."""
    try:
        children = sorted(folder.iterdir())
    except OSError as exc:
        raise ReportInputError(f"{folder}: cannot be listed ({exc.strerror or exc})") from None
    return [c for c in children if c.is_dir() and c.name != LEGACY_SUBDIR]


def model_dirs(run_dir: Path) -> list:
    """The harness model folders at or under ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(f"{run_dir}: not a folder")
    if harness_result_files(run_dir):
        return [run_dir]
    found = [c for c in _subfolders(run_dir) if harness_result_files(c)]
    if not found:
        raise ReportInputError(f"{run_dir}: not a harness output folder (no <model>/*_results.json or results_*.json)")
    return found


def siuo_files_for_model_dir(model_dir: Path) -> list:
    """``[(path, result)]``: the SIUO per-item files the runs of a harness model folder link to."""
    legacy = siuo_files_in(model_dir.parent / LEGACY_SUBDIR)
    out = []
    for path in harness_result_files(model_dir):
        run = HarnessRun.read(path)
        for task in run.task_names():
            if task in TASKS:
                found, result, _ = pair_siuo_file(run, task, legacy)
                if result is not None:
                    out.append((found, result))
    return out


def siuo_answers_for_model_dir(model_dir: Path, runs: list | None = None) -> dict:
    """``{task: (answers_by_qid, source path, run)}`` for the SIUO tasks of a harness model folder (or
    of ``runs``, one model's group of :func:`model_runs`).

    Answers come from the logged samples when present (the model's own output), else from the
    run's SIUO per-item file. The latest run holding a task wins.
    """
    if runs is None:
        runs = [HarnessRun.read(path) for path in harness_result_files(model_dir)]
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
