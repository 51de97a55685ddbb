"""Where each harness writes its files, and where the SIUO per-item file goes beside them: one
row per harness (:data:`LAYOUTS`), used by the writers (the harness adapters), the readers
(:mod:`siuo_task.results.io`), ``siuo verify`` and ``siuo export``. A new harness is one folder
under :mod:`siuo_task.harnesses` plus one row here.

A harness writes its results per model folder; the SIUO per-item file of task ``T`` sits in the
same folder, named after the run's own stamp, so a reader derives it from the harness's results
file alone:

==========  ======================================  =============================  ====================================
harness     results file (in ``<out>/<model>/``)    SIUO per-item file             samples
==========  ======================================  =============================  ====================================
lmms-eval   ``<date>_results.json``                 ``<date>_siuo_<T>.json``       ``<date>_samples_<T>.jsonl``
lm-eval     ``results_<iso>.json``                  ``siuo_<T>_<start>.json``      ``samples_<T>_<iso>.jsonl``
inspect-ai  ``<log>.eval`` (or ``.json``)           ``<T>_<log>.json``             inside the log
==========  ======================================  =============================  ====================================

(``<date>``: lmms-eval's run stamp with ':' as '-'; ``<start>``: lm-eval's ``date`` field, the
run's start time in seconds as JSON writes it; ``<iso>``: the stamp in lm-eval's file name;
``<log>``: the name of an inspect log, ``<created>_<task>_<id>``, without its extension.)

inspect writes every model's logs into one log folder (``--log-dir``, default ``./logs``): its row
says so (``shared_folder``), and readers group that folder's runs by model. Its logs are zip files
(``.eval``) or JSON: the row names the reader that turns one into a harness results dict
(``reader``, ``module:function``; imported by :mod:`siuo_task.results.io`, not here).

Without a harness output folder (Python callers, ``SIUO_RESULTS_DIR``, ``siuo score``):
``<folder>/<T>_<time>_<id>.json``. Versions before 0.2 wrote every model's files to
``<out>/siuo/<T>_<time>_<pid>.json`` (:data:`LEGACY_SUBDIR`), still read.

Pure: names and paths only, no file is opened here.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

LEGACY_SUBDIR = "siuo"
DEFAULT_RESULTS_DIR = "siuo_results"
ENV_RESULTS_DIR = "SIUO_RESULTS_DIR"


@dataclass(frozen=True)
class HarnessLayout:
    """One harness's file names in a model folder.

    ``stamp(results_path, results)`` is the run's stamp as the SIUO file's name uses it (``None``:
    not this harness's results file); ``siuo_name(stamp, task)`` and ``samples_name(results_path,
    task)`` name the files beside it.
    """

    harness: str  # the name recorded in a result's provenance.harness.name
    results_glob: str  # the harness's results files in a model folder
    stamp: Callable[[Path, Mapping], str | None]
    siuo_name: Callable[[str, str], str]
    samples_name: Callable[[Path, str], str | None]
    reader: str | None = None  # "module:function" reading a results file into a dict (None: plain JSON)
    shared_folder: bool = False  # one folder holds every model's runs (group them by model when reading)

    def siuo_file(self, results_path: Path, results: Mapping, task: str) -> Path | None:
        stamp = self.stamp(Path(results_path), results)
        return None if stamp is None else Path(results_path).with_name(self.siuo_name(stamp, task))

    def samples_file(self, results_path: Path, task: str) -> Path | None:
        name = self.samples_name(Path(results_path), task)
        return None if name is None else Path(results_path).with_name(name)


# ---------------------------------------------------------------------------------------- lmms-eval

_LMMS_SUFFIX = "_results.json"


def _is_start_time(value) -> bool:
    """lm-eval records its run's start as a number in ``date``; lmms-eval records a string."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _lmms_stamp(path: Path, results: Mapping) -> str | None:
    if _is_start_time(results.get("date")) or not path.name.endswith(_LMMS_SUFFIX):
        return None
    return path.name[: -len(_LMMS_SUFFIX)]


def lmms_eval_stamp(datetime_str) -> str:
    """lmms-eval's run stamp as its results file's name carries it (':' written as '-')."""
    return str(datetime_str).replace(":", "-")


LMMS_EVAL = HarnessLayout(
    harness="lmms-eval",
    results_glob="*" + _LMMS_SUFFIX,
    stamp=_lmms_stamp,
    siuo_name=lambda stamp, task: f"{stamp}_siuo_{task}.json",
    samples_name=lambda path, task: f"{path.name[: -len(_LMMS_SUFFIX)]}_samples_{task}.jsonl" if path.name.endswith(_LMMS_SUFFIX) else None,
)

# ------------------------------------------------------------------------------------------ lm-eval

_LM_PREFIX = "results_"


def _lm_stamp(path: Path, results: Mapping) -> str | None:
    date = results.get("date")
    return lm_eval_stamp(date) if _is_start_time(date) else None


def lm_eval_stamp(start: float) -> str:
    """lm-eval's run start (its results file's ``date``) as the SIUO file's name carries it."""
    return json.dumps(start)


LM_EVAL = HarnessLayout(
    harness="lm-eval",
    results_glob=_LM_PREFIX + "*.json",
    stamp=_lm_stamp,
    siuo_name=lambda stamp, task: f"siuo_{task}_{stamp}.json",
    samples_name=lambda path, task: f"samples_{task}_{path.stem[len(_LM_PREFIX) :]}.jsonl" if path.name.startswith(_LM_PREFIX) else None,
)

# ---------------------------------------------------------------------------------------- inspect-ai

# An inspect log's name: its creation time as inspect writes it (ISO 8601 with ':' and '+' as '-', so
# 2026-12-04T16-53-13-00-00), '_', the rest (task, id), .eval or .json. The UTC offset tells it from
# lmms-eval's files (2026-12-04T10-00-00.123456_results.json).
_INSPECT_LOG = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?-\d{2}-\d{2}_.+\.(eval|json)$")


def _inspect_stamp(path: Path, results: Mapping) -> str | None:
    return path.stem if _INSPECT_LOG.match(path.name) else None


INSPECT_AI = HarnessLayout(
    harness="inspect-ai",
    # a timestamped name ending in .eval or .json (glob has no alternation: .[ej][vs][ao][ln] is either);
    # harness_result_files keeps those whose whole name is a log's (_INSPECT_LOG)
    results_glob="[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*.[ej][vs][ao][ln]",
    stamp=_inspect_stamp,
    # the task first: inspect takes any timestamped .json in its log folder for one of its logs
    siuo_name=lambda stamp, task: f"{task}_{stamp}.json",
    samples_name=lambda path, task: None,  # the samples live inside the log
    reader="siuo_task.results.io.inspect_logs:read_results",
    shared_folder=True,
)

LAYOUTS = {layout.harness: layout for layout in (LMMS_EVAL, LM_EVAL, INSPECT_AI)}


# ------------------------------------------------------------------------------------------- lookup


def layout_of(results_path, results: Mapping) -> HarnessLayout | None:
    """The layout whose results file this is (``None``: no known harness's)."""
    path = Path(results_path)
    for layout in LAYOUTS.values():
        if layout.stamp(path, results) is not None:
            return layout
    return None


def linked_result_path(harness_results_path, harness_results: Mapping, task: str) -> Path | None:
    """The SIUO per-item file that belongs to one harness results file, by name alone."""
    layout = layout_of(harness_results_path, harness_results)
    return None if layout is None else layout.siuo_file(Path(harness_results_path), harness_results, task)


def harness_result_files(model_dir) -> list:
    """Every known harness's results files in one model folder, by name."""
    folder = Path(model_dir)
    files = {
        p
        for layout in LAYOUTS.values()
        for p in folder.glob(layout.results_glob)
        if p.is_file() and (layout.reader is None or layout.stamp(p, {}) is not None)
    }
    return sorted(files, key=lambda p: p.name)


def reader_of(results_path) -> str | None:
    """The ``module:function`` that reads this harness results file, by its name (``None``: plain JSON)."""
    name = Path(results_path).name
    for layout in LAYOUTS.values():
        if layout.reader is not None and fnmatch.fnmatchcase(name, layout.results_glob) and layout.stamp(Path(name), {}) is not None:
            return layout.reader
    return None


def shares_folder(results_path, results: Mapping) -> bool:
    """Whether this results file's harness writes every model's runs into one folder."""
    layout = layout_of(results_path, results)
    return layout is not None and layout.shared_folder


def samples_file(results_path, results: Mapping, task: str) -> Path | None:
    """The harness's logged samples of ``task`` beside its results file (may not exist)."""
    layout = layout_of(results_path, results)
    return None if layout is None else layout.samples_file(Path(results_path), task)


# ---------------------------------------------------------------------- without a harness folder


def standalone_result_name(task: str, identity: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d_%H%M%S_%f")
    return f"{task}_{stamp}_{identity[:8]}.json"


def is_legacy_result_name(name: str) -> bool:
    return re.match(r"^siuo_(gen|gen_vote3|mcqa)_\d{8}_\d{6}", name) is not None


def results_folder(output_path=None) -> Path:
    """Where a result without a harness model folder goes: ``SIUO_RESULTS_DIR``, else
    ``<output_path>`` (a ``.json`` output path means its folder), else ``./siuo_results``."""
    env = os.environ.get(ENV_RESULTS_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    if output_path:
        base = Path(output_path).expanduser()
        return base.parent if base.suffix == ".json" else base
    return Path.cwd() / DEFAULT_RESULTS_DIR


INSPECT_PACKAGE = "siuo_task"  # the registry prefix of SIUO's tasks in inspect (siuo_task/siuo_gen)


def inspect_task_name(task: str) -> str | None:
    """inspect's name of a task -> SIUO's: ``siuo_task/siuo_gen`` (or ``siuo_gen``, run from a file)
    -> ``siuo_gen``; ``None`` for other tasks. Used by the inspect hooks and the log reader."""
    from siuo_task.core.schema import TASKS

    name = str(task).rsplit("/", 1)[-1]
    return name if name in TASKS and (str(task) == name or str(task).startswith(INSPECT_PACKAGE + "/")) else None
