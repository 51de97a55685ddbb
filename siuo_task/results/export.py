"""Export an lmms-eval run to the official SIUO submission files.

For each model folder of the run this writes, in the release's item order and with the release's
fields (only the items the run answered):

- ``siuo_gen-{model}.json``: the ``siuo_gen.json`` items plus ``responses`` (the list of answers);
- ``siuo_mcqa-{model}.json``: the ``siuo_mcqa.json`` items plus ``response_mcqa`` (the answer).

These are the files the official ``gpt-eval.py`` / ``mcqa-eval.py`` read and ``siuo score`` reads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from siuo_task.core.data import ENV_DATA_DIR, load_items
from siuo_task.results.io import (
    ReportInputError,
    model_dirs,
    model_runs,
    siuo_answers_for_model_dir,
    siuo_files_for_model_dir,
)
from siuo_task.core.schema import GEN_TASKS, MCQA_TASK, write_json_atomic

FORMATS = ("official",)


def safe_file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def _recorded_data_dir(model_dir: Path) -> Optional[str]:
    """The local data folder a run recorded in its SIUO per-item files, if it still exists."""
    for _, result in siuo_files_for_model_dir(model_dir):
        prov = result.get("provenance") or {}
        folder = (prov.get("dataset") or {}).get("data_dir")
        if folder and (prov.get("dataset") or {}).get("origin") != "huggingface" and Path(folder).is_dir():
            return folder
    return None


def _release_items(setting: str, data_dir: Optional[str]) -> list:
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
    out_dir: Optional[str] = None,
    *,
    data_dir: Optional[str] = None,
    model: Optional[str] = None,
    gen_task: Optional[str] = None,
) -> list:
    """Write the official files for every model of ``run_dir`` (or only ``model``); returns
    ``[(path, task, source, n_items)]``."""
    folders = model_dirs(Path(run_dir))
    out = Path(out_dir) if out_dir else Path(run_dir) / "official"
    written = []
    matched = False
    for folder in folders:
        for name, runs in model_runs(folder):  # one model per folder; every model of an inspect log folder
            if model is not None and model not in (name, folder.name):
                continue
            matched = True
            answers = siuo_answers_for_model_dir(folder, runs)
            if not answers:
                raise ReportInputError(f"{folder}: no SIUO task answers found for {name} (run with --log_samples, or keep the SIUO files beside the run)")
            written.extend(_export_model(name, folder, answers, out, data_dir, gen_task))
    if not matched:
        raise ReportInputError(f"{run_dir}: no model named {model!r} (found: {', '.join(f.name for f in folders)})")
    return written


def _export_model(name: str, folder: Path, answers: dict, out: Path, data_dir: Optional[str], gen_task: Optional[str]) -> list:
    written = []
    chosen_dir = data_dir or (None if os.environ.get(ENV_DATA_DIR) else _recorded_data_dir(folder))
    gen_candidates = [t for t in reversed(GEN_TASKS) if t in answers]  # siuo_gen_vote3 first: 3 answers, as the paper
    if gen_task is not None:
        if gen_task not in answers:
            raise ReportInputError(f"{folder}: no answers for {gen_task} (found: {', '.join(sorted(answers))})")
        gen_candidates = [gen_task]
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_file_part(name)
    if gen_candidates:
        task = gen_candidates[0]
        by_qid, source, _ = answers[task]
        rows = _official_rows(_release_items("gen", chosen_dir), by_qid, "responses", task, source)
        path = out / f"siuo_gen-{stem}.json"
        _write(path, rows)
        written.append((path, task, source, len(rows)))
    if MCQA_TASK in answers:
        by_qid, source, _ = answers[MCQA_TASK]
        rows = _official_rows(_release_items("mcqa", chosen_dir), by_qid, "response_mcqa", MCQA_TASK, source)
        path = out / f"siuo_mcqa-{stem}.json"
        _write(path, rows)
        written.append((path, MCQA_TASK, source, len(rows)))
    return written


def _write(path: Path, rows: list) -> None:
    write_json_atomic(path, rows)
