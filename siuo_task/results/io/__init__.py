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

Every file is read with its failures named (:func:`read_json`) and its shape checked
(:mod:`siuo_task.results.shape`) before anything reads a field: a malformed file raises
:class:`ReportInputError` naming the file and the field. Modules: ``files`` (one file), ``runs``
(harness run folders), ``records`` (one record per model).
"""

from __future__ import annotations

from siuo_task.core.layouts import LEGACY_SUBDIR, harness_result_files  # noqa: F401 (part of this module's API)
from siuo_task.results.io.files import (  # noqa: F401 (re-exported)
    ReportInputError,
    answers_by_qid,
    answers_from_samples,
    checked_harness_results,
    checked_result,
    created,
    headline_metrics,
    is_gen,
    is_harness_results,
    is_siuo_result,
    looks_like_siuo_result,
    model_name_for,
    model_name_from_args,
    parse_model_args,
    read_json,
    read_jsonl,
    read_results_file,
    same_model_args,
)
from siuo_task.results.io.records import (  # noqa: F401 (re-exported)
    ModelRecord,
    load_harness_model_dir,
    load_records,
    records_from_siuo_results,
    split_label,
)
from siuo_task.results.io.runs import (  # noqa: F401 (re-exported)
    HarnessRun,
    model_dirs,
    model_runs,
    pair_siuo_file,
    siuo_answers_for_model_dir,
    siuo_files_for_model_dir,
    siuo_files_in,
)
