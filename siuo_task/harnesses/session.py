"""One scoring session per task per evaluation: the judge check before generation, the one
scoring of all records at aggregation, the result file, the log table.

An adapter begins a task's :class:`ScoringSession` where its harness begins an evaluation
(lmms-eval: ``process_docs``; lm-eval: ``custom_dataset``). The session fixes the judge settings,
the MCQA policy and the decoding check for that evaluation; the task's aggregations share its one
result; the next evaluation begins a new session. Everything that decides a number lives in
:mod:`siuo_task.core.scoring`. Nothing here imports a harness.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from siuo_task.core import data, layouts, schema, scoring
from siuo_task.core.mcqa import POLICIES
from siuo_task.harnesses.call import HarnessCall, harness_info

ENV_MCQA_POLICY = "SIUO_MCQA_POLICY"
ENV_JUDGE_PREFLIGHT = "SIUO_JUDGE_PREFLIGHT"


def _escape_if_swallowed(harness_name: str, exc: BaseException) -> None:
    """lmms-eval's CLI catches every Exception from an evaluation, logs it and exits 0: an invalid
    result or a fatal judge error leaves it as :class:`scoring.SIUORunAborted` instead (exit non-zero)."""
    from siuo_task.judge import JudgeUnavailable

    if harness_name == "lmms-eval" and isinstance(exc, (scoring.SIUOInvalidResult, JudgeUnavailable)):
        raise scoring.SIUORunAborted(f"{type(exc).__name__}: {exc}") from exc


def judge_preflight(config, log: Callable[[str], None], *, skip: bool = False, harness_name: str = "") -> None:
    """Fail before generation, not after an hour of GPU time, when the judge can't be used.

    ``skip`` (the harness runs predict-only) or ``SIUO_JUDGE_PREFLIGHT=0`` turns the check off.
    """
    if skip or os.environ.get(ENV_JUDGE_PREFLIGHT, "1") == "0":
        return
    from siuo_task.judge import JudgeClient

    try:
        with JudgeClient(config) as client:
            client.preflight()
    except Exception as exc:
        _escape_if_swallowed(harness_name, exc)
        raise
    log(f"SIUO judge: {config.model} at {config.endpoint_host} answered a check call ({config.settings_described})")


def format_table(result: dict, path: Path | None) -> str:
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


def failure_warning(result: dict) -> str | None:
    failures = result["counts"].get("failed") or result["counts"].get("generation_failures")
    if failures:
        return f"SIUO {result['task']}: {failures} model request(s) failed or gave no text; they are counted, not scored as answers"
    return None


def mcqa_policy() -> str:
    policy = os.environ.get(ENV_MCQA_POLICY, "official")
    if policy not in POLICIES:
        raise ValueError(f"{ENV_MCQA_POLICY}={policy!r}: expected one of {', '.join(POLICIES)}")
    return policy


def write_item_scores(records: list, result: Mapping, metric: str) -> None:
    """Write each item's score for ``metric`` (:func:`scoring.item_score`, from the one result) into
    that metric's harness records, under ``schema.ITEM_SCORE_KEY``; an item without a verdict gets
    none (the harness then leaves it out, as the rate does). lmms-eval computes its standard errors
    from these after the aggregation; no judge call and no I/O here."""
    scores = {item["question_id"]: scoring.item_score(item, metric) for item in result["items"]}
    for record in records:
        score = scores.get(record.get("question_id"))
        if score is None:
            record.pop(schema.ITEM_SCORE_KEY, None)
        else:
            record[schema.ITEM_SCORE_KEY] = score


# ------------------------------------------------------------------------------------ scoring session


class ScoringSession:
    """Everything that decides one task's numbers in one evaluation, fixed when the evaluation begins.

    Carries the task, the harness call, the judge settings (generation) or the MCQA policy, the
    model-class decoding check and one identity (recorded in the result's provenance as
    ``harness.session``). Every aggregation of the task hands it the same records: the first
    scores (for generation: one judging pass) and writes the result file, the others get the same
    result.
    """

    def __init__(
        self,
        task: str,
        call: HarnessCall,
        *,
        task_config: Mapping | None = None,
        model_decoding: dict | None = None,
        info: Callable[[str], None] = print,
        warning: Callable[[str], None] = print,
        judge: object | None = None,
        usage_sink: Callable[[str, int, int], None] | None = None,
    ):
        schema.setting_of(task)  # a known task
        self.task = task
        self.call = call
        self.identity = uuid.uuid4().hex
        self._info = info
        self._warning = warning
        self.mcqa_policy = mcqa_policy() if task == schema.MCQA_TASK else None
        self.judge_config = None
        if schema.is_gen_task(task):
            from siuo_task.judge import JudgeConfig

            self.judge_config = JudgeConfig.from_env()
        self.harness = harness_info(call, task_config)
        self.harness["session"] = self.identity
        if model_decoding is not None:
            self.harness["model_decoding"] = model_decoding
        # A judge the harness already holds (``run``, ``provenance``, ``config``, as JudgeClient), used
        # instead of a JudgeClient of the session's own; the harness closes it. inspect-ai's adapter
        # judges each sample as it completes and hands the same judge here, so scoring replays its replies.
        self.judge = judge
        # The harness's own usage accounting for the judge's calls (lmms-eval 0.7: log_usage), or None.
        self.usage_sink = usage_sink
        self._results: dict = {}
        self._lock = threading.Lock()
        self.path: Path | None = None

    def preflight(self) -> None:
        """Check the judge before any model runs (generation; not when the harness only predicts), and
        warn when lmms-eval's judge variables name another judge than the one SIUO will use."""
        if self.judge_config is None or self.call.predict_only:
            return
        differs = self.judge_config.differs_from_lmms_eval()
        if differs:
            self._warning(f"SIUO {self.task}: {differs}")
        judge_preflight(self.judge_config, self._info, harness_name=self.call.name)

    def score(self, records: list) -> dict:
        if not records:
            raise scoring.SIUOScoringError(f"SIUO {self.task}: no answers to score (the harness produced no per-item records)")
        foreign = {r.get("task") for r in records} - {self.task}
        if foreign:
            raise scoring.SIUOScoringError(
                f"SIUO {self.task}: records of another task ({', '.join(map(str, foreign))}) reached its aggregation"
            )
        # the answers decide the key, not the item scores an earlier aggregation wrote into its records
        answers = [{k: v for k, v in r.items() if k != schema.ITEM_SCORE_KEY} for r in records]
        key = hashlib.sha256(json.dumps(answers, sort_keys=True, default=str).encode()).hexdigest()
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
        path = None if os.environ.get(layouts.ENV_RESULTS_DIR, "").strip() else self.call.result_path(self.task)
        if path is None:
            return layouts.results_folder() / layouts.standalone_result_name(self.task, self.identity)
        if n > 1:  # a second, different set of answers in one evaluation (never happens with one filter)
            path = path.with_name(f"{path.stem}_{n}{path.suffix}")
        if path.exists() and self._written_by_another(path):
            # Another evaluation under the same run stamp (a Python caller reusing lmms-eval's default
            # datetime_str): never overwrite its file; this one is not linked from the harness's files.
            other = path.with_name(f"{path.stem}_{self.identity[:8]}{path.suffix}")
            self._warning(
                f"SIUO {self.task}: {path} belongs to another evaluation with the same run stamp; writing {other.name} "
                "instead (siuo report will not find it from the harness's results file)"
            )
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
        from siuo_task.judge import JudgeClient

        answers = {r["question_id"]: r["answers"] for r in records}
        if self.judge is not None:
            return scoring.score_gen(
                answers,
                items,
                self.judge,
                source=source,
                harness=self.harness,
                variant=scoring.gen_variant(self.task, answers),
                task=self.task,
                progress=False,
            )
        with JudgeClient(self.judge_config, usage_sink=self.usage_sink) as client:
            return scoring.score_gen(
                answers, items, client, source=source, harness=self.harness, variant=scoring.gen_variant(self.task, answers), task=self.task
            )


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
        self._latest: ScoringSession | None = None
        self._lock = threading.Lock()

    def begin(self, task: str, call: HarnessCall | None = None, **kwargs) -> ScoringSession:
        session = ScoringSession(task, call or self._call(), info=self._info, warning=self._warning, **kwargs)
        with self._lock:
            self._current[task] = session
            self._latest = session
        return session

    def current(self, task: str) -> ScoringSession | None:
        with self._lock:
            return self._current.get(task)

    def latest_model(self) -> str | None:
        """The model class named by the evaluation that began a session last (``None`` before any)."""
        with self._lock:
            return self._latest.call.model if self._latest is not None else None

    def metric(self, name: str) -> Callable:
        """The aggregation function for metric ``name``: the session's one result, that metric; it
        also writes each item's score into the records it got (:func:`write_item_scores`)."""

        def aggregate(records, *args, **kwargs):
            if not records:
                raise scoring.SIUOScoringError(
                    f"SIUO aggregation of {name}: no answers to score (the harness produced no per-item records)"
                )
            task = records[0].get("task")
            session = self.current(task) if task else None
            if session is None:
                raise scoring.SIUOScoringError(
                    f"SIUO aggregation of {name}: no scoring session for task {task!r} (the harness did not build the task's documents "
                    "through the SIUO hooks in this process)"
                )
            try:
                result = session.score(records)
                write_item_scores(records, result, name)
                return result["metrics"][name]
            except Exception as exc:
                _escape_if_swallowed(session.call.name, exc)
                raise

        aggregate.__name__ = f"siuo_aggregate_{name}"
        return aggregate
