"""Export an lmms-eval run to the official SIUO submission files.

For each model folder of the run this writes, in the release's item order and with the release's
fields (only the items the run answered):

- ``siuo_gen-{model}.json``: the ``siuo_gen.json`` items plus ``responses`` (the list of answers);
- ``siuo_mcqa-{model}.json``: the ``siuo_mcqa.json`` items plus ``response_mcqa`` (the answer).

``{model}`` is the model's full id made file-safe (``org/Model`` -> ``org_Model``; two ids that
would give the same name get a short hash each). An answer the model never gave is ``null``.

These are the files the official ``gpt-eval.py`` / ``mcqa-eval.py`` read and ``siuo score`` reads.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from siuo_task.core.data import ENV_DATA_DIR, load_items
from siuo_task.core.schema import GEN_TASKS, MCQA_TASK, SIUOOutputError, check_output_path, write_json_atomic
from siuo_task.results.io import (
    ReportInputError,
    model_dirs,
    model_runs,
    read_json,
    siuo_answers_for_model_dir,
    siuo_files_for_model_dir,
)
from siuo_task.results.verify import is_official_submission, stand_in_judge

FORMATS = ("official",)


def safe_file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def _recorded_data_dir(model_dir: Path) -> str | None:
    """The local data folder a run recorded in its SIUO per-item files, if it still exists."""
    for _, result in siuo_files_for_model_dir(model_dir):
        prov = result.get("provenance") or {}
        folder = (prov.get("dataset") or {}).get("data_dir")
        if folder and (prov.get("dataset") or {}).get("origin") != "huggingface" and Path(folder).is_dir():
            return folder
    return None


def _release_items(setting: str, data_dir: str | None) -> list:
    items, _ = load_items(setting, data_dir, check_images=False)
    return [{k: v for k, v in item.items() if k != "image_path"} for item in items]


def _official_rows(items: list, answers: dict, field: str, task: str, source: Path) -> list:
    known = {item["question_id"] for item in items}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise ReportInputError(f"{source}: {task} answers for question_id(s) {unknown[:10]} not in the SIUO data")
    rows = []
    for item in items:
        qid = item["question_id"]
        if qid not in answers:
            continue
        value = answers[qid]
        if field == "responses":
            value = list(value) if isinstance(value, (list, tuple)) else [value]
        rows.append({**item, field: value})
    return rows


def export_official(
    run_dir: str,
    out_dir: str | None = None,
    *,
    data_dir: str | None = None,
    model: str | None = None,
    gen_task: str | None = None,
) -> list:
    """Write the official files for every model of ``run_dir`` (or only ``model``); returns
    ``[(path, task, source, n_items)]``. Everything is read and checked before anything is written:
    a run graded by the dry-run judge is refused, every model gets its own file (named after its
    full id), and no file read is written over."""
    folders = model_dirs(Path(run_dir))
    out = Path(out_dir) if out_dir else Path(run_dir) / "official"
    if out.exists() and not out.is_dir():
        raise SIUOOutputError(f"--out {out}: not a folder (export writes one file per model and setting into a folder)")
    planned = []  # (key, model id, setting, task, rows, source)
    inputs: list = []
    matched = False
    for folder in folders:
        for name, runs in model_runs(folder):  # one model per folder; every model of an inspect log folder
            model_id = runs[-1].model_id if runs else name
            if model is not None and model not in (name, model_id, folder.name):
                continue
            matched = True
            inputs += [run.path for run in runs]
            for path, result in siuo_files_for_model_dir(folder):
                inputs.append(path)
                why = stand_in_judge(result)
                if why:
                    raise ReportInputError(f"{path}: {why}; a dry run is not a submission: nothing written")
            answers = siuo_answers_for_model_dir(folder, runs)
            if not answers:
                raise ReportInputError(
                    f"{folder}: no SIUO task answers found for {name} (run with --log_samples, or keep the SIUO files beside the run)"
                )
            chosen_dir = data_dir or (None if os.environ.get(ENV_DATA_DIR) else _recorded_data_dir(folder))
            gen_candidates = [t for t in reversed(GEN_TASKS) if t in answers]  # siuo_gen_vote3 first: 3 answers, as the paper
            if gen_task is not None:
                if gen_task not in answers:
                    raise ReportInputError(f"{folder}: no answers for {gen_task} (found: {', '.join(sorted(answers))})")
                gen_candidates = [gen_task]
            key = (model_id, str(folder))
            if gen_candidates:
                task = gen_candidates[0]
                by_qid, source, _ = answers[task]
                inputs.append(source)
                planned.append(
                    (key, "gen", task, _official_rows(_release_items("gen", chosen_dir), by_qid, "responses", task, source), source)
                )
            if MCQA_TASK in answers:
                by_qid, source, _ = answers[MCQA_TASK]
                inputs.append(source)
                rows = _official_rows(_release_items("mcqa", chosen_dir), by_qid, "response_mcqa", MCQA_TASK, source)
                planned.append((key, "mcqa", MCQA_TASK, rows, source))
    if not matched:
        raise ReportInputError(f"{run_dir}: no model named {model!r} (found: {', '.join(f.name for f in folders)})")
    stems = file_stems({key for key, *_ in planned})
    targets = [(out / f"siuo_{setting}-{stems[key]}.json", task, rows, source) for key, setting, task, rows, source in planned]
    for path, *_ in targets:
        _check_target(path, inputs)
    written = []
    for path, task, rows, source in targets:
        write_json_atomic(path, rows)
        written.append((path, task, source, len(rows)))
    return written


def file_stems(keys) -> dict:
    """``{(model id, folder): file stem}``: the model's full id made file-safe (``org/Model`` ->
    ``org_Model``); ids whose stems would collide get a short hash of id and folder appended, so
    no model's file is ever written over by another's."""
    first = {key: safe_file_part(key[0]) for key in keys}
    counts: dict = {}
    for stem in first.values():
        counts[stem] = counts.get(stem, 0) + 1
    return {
        key: stem if counts[stem] == 1 else f"{stem}-{hashlib.sha256('|'.join(key).encode()).hexdigest()[:8]}"
        for key, stem in first.items()
    }


def _check_target(path: Path, inputs: list) -> None:
    """An export file may replace an earlier export (an official submission), never anything else."""
    check_output_path(path, inputs, what="export")
    if path.exists():
        try:
            earlier = read_json(path)
        except ReportInputError:
            earlier = None
        if not is_official_submission(earlier):
            raise SIUOOutputError(f"export {path}: exists and is not an official submission file; refusing to overwrite it")
