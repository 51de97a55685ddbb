"""What the harness adapters share: documents, images, per-item records, one scoring session per
evaluation, result files.

Nothing here imports a harness. Each adapter finds, in one small place, what its harness was asked
to do (a :class:`HarnessCall`: model, arguments, predict-only, where the harness writes that
model's results and under which run stamp) and begins a :class:`ScoringSession` per task where
the harness begins an evaluation (lmms-eval: ``process_docs``; lm-eval: ``custom_dataset``). The
session fixes the judge settings, the MCQA policy and the decoding check for that evaluation; the
task's aggregations share its one result; the next evaluation begins a new session. Everything
that decides a number lives in :mod:`siuo_task.scoring`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

from . import data, schema, scoring
from .mcqa import POLICIES

ENV_MCQA_POLICY = "SIUO_MCQA_POLICY"
ENV_JUDGE_PREFLIGHT = "SIUO_JUDGE_PREFLIGHT"

# ------------------------------------------------------------------------------------------ documents


def load_docs(setting: str, log: Callable[[str], None]):
    """The validated items of ``setting`` as a ``datasets.Dataset`` (images checked, not loaded)."""
    import datasets

    items, source = data.load_items(setting)
    log(f"SIUO {setting}: {len(items)} items from {source.origin} ({source.data_dir})")
    return datasets.Dataset.from_list(items)


def _escape_if_swallowed(harness_name: str, exc: BaseException) -> None:
    """lmms-eval's CLI catches every Exception from an evaluation, logs it and exits 0: an invalid
    result or a fatal judge error leaves it as :class:`scoring.SIUORunAborted` instead (exit non-zero)."""
    from .judge import JudgeUnavailable

    if harness_name == "lmms-eval" and isinstance(exc, (scoring.SIUOInvalidResult, JudgeUnavailable)):
        raise scoring.SIUORunAborted(f"{type(exc).__name__}: {exc}") from exc


def judge_preflight(config, log: Callable[[str], None], *, skip: bool = False, harness_name: str = "") -> None:
    """Fail before generation, not after an hour of GPU time, when the judge can't be used.

    ``skip`` (the harness runs predict-only) or ``SIUO_JUDGE_PREFLIGHT=0`` turns the check off.
    """
    if skip or os.environ.get(ENV_JUDGE_PREFLIGHT, "1") == "0":
        return
    from .judge import JudgeClient

    try:
        with JudgeClient(config) as client:
            client.preflight()
    except Exception as exc:
        _escape_if_swallowed(harness_name, exc)
        raise
    log(f"SIUO judge: {config.model} at {config.endpoint_host} answered a check call")


def doc_images(doc: Mapping) -> list:
    """The item's image, decoded as RGB (a one-element list: the form both harnesses take)."""
    from PIL import Image

    with Image.open(doc["image_path"]) as img:
        return [img.convert("RGB")]


def doc_to_target(doc: Mapping) -> str:
    return doc.get("correct_option", "") or ""


# -------------------------------------------------------------------------------------------- records


def answers_from_results(results) -> list:
    """The model's answer(s) for one item, from what the harness hands ``process_results``.

    lmms-eval 0.7.3 hands over a flat list (one answer, or the ``take_first_k`` answers of
    siuo_gen_vote3); lm-eval hands over one entry per request, which ``take_first_k`` makes a list
    (``[[a, b, c]]``): a nested list is flattened. Anything that is not a string (a harness
    placeholder for a missing reply), and a missing reply, becomes ``None``: a generation failure,
    counted, never scored as an answer. The text is kept as the harness gave it; scoring
    normalises it the same way for every harness (:func:`siuo_task.scoring.normalize_answer`).
    """
    results = list(results or [])
    if results and isinstance(results[0], (list, tuple)):
        results = list(results[0])
    return [a if isinstance(a, str) else None for a in results] or [None]


def mcqa_process_results(doc, results) -> dict:
    """Record ``question_id`` and the answer only: scoring happens once, in the aggregation."""
    record = {"task": schema.MCQA_TASK, "question_id": doc["question_id"], "response": answers_from_results(results)[0]}
    return {name: record for name in schema.MCQA_METRICS}


def make_gen_process_results(task: str) -> Callable:
    def process_results(doc, results) -> dict:
        record = {"task": task, "question_id": doc["question_id"], "answers": answers_from_results(results)}
        return {name: record for name in schema.GEN_METRICS}

    process_results.__name__ = f"{task}_process_results"
    return process_results


# ------------------------------------------------------------------------------------ provenance, I/O

redact_model_args = schema.redact_model_args


def caller_locals(function: str, module: str) -> Optional[dict]:
    """The local variables of the nearest caller frame running ``module.function`` (a harness's
    ``simple_evaluate``, whose arguments say what the evaluation was asked to do), or ``None``."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_globals.get("__name__") == module:
            return dict(frame.f_locals)
        frame = frame.f_back
    return None


@dataclass
class HarnessCall:
    """What one harness evaluation was asked to do, as its adapter found it.

    ``result_path(task)`` gives where the harness writes that model's results and the SIUO file's
    name derived from the run's stamp (``None``: the harness writes no files for this run). It is
    asked at write time: the harness names the model folder after the tasks are built.
    """

    name: str
    distribution: str
    model: Optional[str] = None
    model_args: object = None
    gen_kwargs: object = None
    limit: object = None
    predict_only: bool = False
    force_simple: bool = False
    extra: dict = field(default_factory=dict)
    result_path: Callable[[str], Optional[Path]] = lambda task: None
    found_in: str = "nothing"  # "the evaluator call", "the command line" or "nothing"


def harness_info(call: HarnessCall, task_config: Optional[Mapping]) -> dict:
    """The ``harness`` part of a result's provenance, the same for every adapter.

    ``task_config`` is the task's YAML as the harness loads it (its decoding settings are recorded;
    ``--gen_kwargs`` overrides appear under ``gen_kwargs``).
    """
    try:
        from importlib.metadata import version

        harness_version = version(call.distribution)
    except Exception:  # pragma: no cover
        harness_version = None
    generation = None
    if task_config is not None:
        generation = dict(task_config.get("generation_kwargs") or {})
        if task_config.get("repeats"):
            generation["repeats"] = task_config["repeats"]
    return {
        "name": call.name,
        "version": harness_version,
        "task_generation_kwargs": generation,
        "model": call.model,
        "model_args": schema.redact_model_args(call.model_args),
        "gen_kwargs": call.gen_kwargs,
        "limit": call.limit,
        **call.extra,
    }


def format_table(result: dict, path: Optional[Path]) -> str:
    """The headline numbers and the per-category table, as log text."""
    names = list(result["metrics"])
    lines = [f"SIUO {result['task']}: " + ", ".join(f"{n}={result['metrics'][n]}" for n in names)]
    for cat, row in result["by_category"].items():
        lines.append(f"  {cat:32s} " + "  ".join(f"{n}={row.get(n)}" for n in names) + f"  (n={row['n']})")
    if "judge_errors" in result:
        lines.append(f"  judge errors: {result['judge_errors']}, generation failures: {result['counts']['generation_failures']}")
    else:
        lines.append(f"  unparsed: {result['counts']['unparsed']}, failed requests: {result['counts']['failed']}")
    if path is not None:
        lines.append(f"  per-item records and provenance: {path}")
    return "\n".join(lines)


def failure_warning(result: dict) -> Optional[str]:
    failures = result["counts"].get("failed") or result["counts"].get("generation_failures")
    if failures:
        return f"SIUO {result['task']}: {failures} model request(s) failed or gave no text; they are counted, not scored as answers"
    return None


def mcqa_policy() -> str:
    policy = os.environ.get(ENV_MCQA_POLICY, "official")
    if policy not in POLICIES:
        raise ValueError(f"{ENV_MCQA_POLICY}={policy!r}: expected one of {', '.join(POLICIES)}")
    return policy


# ------------------------------------------------------------------------------------ scoring session


class ScoringSession:
    """Everything that decides one task's numbers in one evaluation, fixed when the evaluation begins.

    Carries the task, the harness call, the judge settings (generation) or the MCQA policy, the
    model-class decoding check and one identity (recorded in the result's provenance as
    ``harness.session``). Every aggregation of the task hands it the same records: the first
    scores (for generation: one judging pass) and writes the result file, the others get the same
    result.
    """

    def __init__(self, task: str, call: HarnessCall, *, task_config: Optional[Mapping] = None,
                 model_decoding: Optional[dict] = None, info: Callable[[str], None] = print,
                 warning: Callable[[str], None] = print):
        schema.setting_of(task)  # a known task
        self.task = task
        self.call = call
        self.identity = uuid.uuid4().hex
        self._info = info
        self._warning = warning
        self.mcqa_policy = mcqa_policy() if task == schema.MCQA_TASK else None
        self.judge_config = None
        if schema.is_gen_task(task):
            from .judge import JudgeConfig

            self.judge_config = JudgeConfig.from_env()
        self.harness = harness_info(call, task_config)
        self.harness["session"] = self.identity
        if model_decoding is not None:
            self.harness["model_decoding"] = model_decoding
        self._results: dict = {}
        self._lock = threading.Lock()
        self.path: Optional[Path] = None

    def preflight(self) -> None:
        """Check the judge before any model runs (generation; not when the harness only predicts)."""
        if self.judge_config is not None:
            judge_preflight(self.judge_config, self._info, skip=self.call.predict_only, harness_name=self.call.name)

    def score(self, records: list) -> dict:
        if not records:
            raise scoring.SIUOScoringError(f"SIUO {self.task}: no answers to score (the harness produced no per-item records)")
        foreign = {r.get("task") for r in records} - {self.task}
        if foreign:
            raise scoring.SIUOScoringError(f"SIUO {self.task}: records of another task ({', '.join(map(str, foreign))}) reached its aggregation")
        key = hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()
        with self._lock:
            if key in self._results:
                result = self._results[key]
                scoring.check_valid(result, self.path)  # every aggregation of an invalid result fails
                return result
            result = self._score(records)
            self._results[key] = result
            path = self._target(len(self._results))
            self.path = path
            self._info(format_table(result, path))
            warning = failure_warning(result)
            if warning:
                self._warning(warning)
            schema.write_result(result, path)  # raises SIUOInvalidResult after writing an invalid result
            return result

    def _target(self, n: int) -> Path:
        path = None if os.environ.get(schema.ENV_RESULTS_DIR, "").strip() else self.call.result_path(self.task)
        if path is None:
            return schema.results_folder() / schema.standalone_result_name(self.task, self.identity)
        if n > 1:  # a second, different set of answers in one evaluation (never happens with one filter)
            path = path.with_name(f"{path.stem}_{n}{path.suffix}")
        if path.exists() and self._written_by_another(path):
            # Another evaluation under the same run stamp (a Python caller reusing lmms-eval's default
            # datetime_str): never overwrite its file; this one is not linked from the harness's files.
            other = path.with_name(f"{path.stem}_{self.identity[:8]}{path.suffix}")
            self._warning(f"SIUO {self.task}: {path} belongs to another evaluation with the same run stamp; writing {other.name} "
                          "instead (siuo report will not find it from the harness's results file)")
            path = other
        return path

    def _written_by_another(self, path: Path) -> bool:
        try:
            session = json.loads(path.read_text(encoding="utf-8"))["provenance"]["harness"].get("session")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return True
        return session != self.identity

    def _score(self, records: list) -> dict:
        setting = schema.setting_of(self.task)
        items, source = data.load_items(setting, check_images=False)
        if setting == "mcqa":
            responses = {r["question_id"]: r["response"] for r in records}
            return scoring.score_mcqa(responses, items, policy=self.mcqa_policy, source=source, harness=self.harness)
        from .judge import JudgeClient

        answers = {r["question_id"]: r["answers"] for r in records}
        with JudgeClient(self.judge_config) as client:
            return scoring.score_gen(answers, items, client, source=source, harness=self.harness,
                                     variant=scoring.gen_variant(self.task, answers), task=self.task)


class Sessions:
    """The scoring sessions of one harness adapter: the one begun by the current evaluation, per task.

    An evaluation begins a task's session when the harness builds the task's documents; a later
    evaluation in the same process begins a new one, so nothing carries over.
    """

    def __init__(self, call: Callable[[], HarnessCall], info: Callable[[str], None], warning: Callable[[str], None]):
        self._call = call
        self._info = info
        self._warning = warning
        self._current: dict = {}
        self._latest: Optional[ScoringSession] = None
        self._lock = threading.Lock()

    def begin(self, task: str, call: Optional[HarnessCall] = None, **kwargs) -> ScoringSession:
        session = ScoringSession(task, call or self._call(), info=self._info, warning=self._warning, **kwargs)
        with self._lock:
            self._current[task] = session
            self._latest = session
        return session

    def current(self, task: str) -> Optional[ScoringSession]:
        with self._lock:
            return self._current.get(task)

    def latest_model(self) -> Optional[str]:
        """The model class named by the evaluation that began a session last (``None`` before any)."""
        with self._lock:
            return self._latest.call.model if self._latest is not None else None

    def metric(self, name: str) -> Callable:
        """The aggregation function for metric ``name``: the session's one result, that metric."""

        def aggregate(records, *args, **kwargs):
            if not records:
                raise scoring.SIUOScoringError(f"SIUO aggregation of {name}: no answers to score (the harness produced no per-item records)")
            task = records[0].get("task")
            session = self.current(task) if task else None
            if session is None:
                raise scoring.SIUOScoringError(
                    f"SIUO aggregation of {name}: no scoring session for task {task!r} (the harness did not build the task's documents "
                    "through the SIUO hooks in this process)")
            try:
                return session.score(records)["metrics"][name]
            except Exception as exc:
                _escape_if_swallowed(session.call.name, exc)
                raise

        aggregate.__name__ = f"siuo_aggregate_{name}"
        return aggregate
