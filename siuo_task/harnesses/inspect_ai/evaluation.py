"""One SIUO task's evaluation inside inspect: the scoring session, the judge, the answers, and the one
task-level scoring that writes the SIUO per-item file beside the inspect log.

inspect scores each sample as it completes; SIUO scores a task's answers all at once, after
generation. Both hold here, through inspect's task lifecycle (its ``EarlyStopping`` protocol, the
one hook inspect calls at the start of a task, after every sample and at the end, inside the task:
an error there fails the task). :class:`TaskScoring` never stops a sample early; it

- at the start (before any sample runs): begins the task's :class:`~siuo_task.harnesses.session.ScoringSession`
  (judge settings, MCQA policy), records how the model decodes against the protocol, and makes the
  judge's one real check call (generation tasks), so a missing key or a wrong endpoint stops the run
  before the model generates anything;
- after each sample: keeps its answer (the scorer, :mod:`.scorer`, has already judged it through
  the evaluation's :class:`~.judging.BatchJudge`, so the log shows its verdicts and reasons);
- at the end: hands every answer to the session, which scores them with the package's core
  (``score_gen`` replaying the judge replies the scorers got: no second judge call; ``score_mcqa``),
  writes the result file beside the log and raises :class:`~siuo_task.core.schema.SIUOInvalidResult`
  for an invalid result, so the inspect task ends with status "error" and no headline numbers.

The evaluation a scorer belongs to travels in a context variable set when the task starts: inspect
runs the task's samples in tasks of its own, which inherit it, so one ``Task`` object evaluated with
several models at once keeps their answers apart. Each evaluation is registered by its ``eval_id``
until the run ends (:mod:`.hooks` then closes its judge and, under ``inspect eval``, makes the
command fail when a SIUO result is invalid or its judge was unusable).
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from siuo_task.core import data, layouts, schema
from siuo_task.harnesses.call import HarnessCall
from siuo_task.harnesses.session import ScoringSession

logger = logging.getLogger("siuo_task.inspect_ai")

HARNESS = layouts.INSPECT_AI.harness
REDUCER = "siuo_vote"  # the name of scorer.siuo_vote in inspect's registry
DISTRIBUTION = "inspect_ai"
# The GenerateConfig fields that change what the model is asked or how it decodes.
DECODING_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_seqs",
    "num_choices",
    "best_of",
    "system_message",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
)

_current: contextvars.ContextVar = contextvars.ContextVar("siuo_task_inspect_evaluation", default=None)
_evaluations: dict = {}  # eval_id -> Evaluation, until the run ends (hooks.py)
_plans: dict = {}  # eval_id -> the run's generate config, from inspect's task-start hook


class SIUOEvaluationError(RuntimeError):
    """A SIUO task used in a way its protocol does not allow (said before any sample runs)."""


def current() -> Evaluation:
    ev = _current.get()
    if ev is None:
        raise SIUOEvaluationError(
            "SIUO: no SIUO evaluation is running here: the SIUO scorers only work inside the "
            "SIUO tasks (siuo_task/siuo_gen, siuo_task/siuo_gen_vote3, siuo_task/siuo_mcqa)"
        )
    return ev


def note_plan(eval_id: str, config) -> None:
    _plans[eval_id] = config


def clear_plans() -> None:
    """At the run's end: the generate configs of tasks that never started (one run at a time per process)."""
    _plans.clear()


def evaluations_of(run_id: str | None) -> list:
    return [ev for ev in _evaluations.values() if run_id is None or ev.run_id == run_id]


def forget(ev: Evaluation) -> None:
    _evaluations.pop(ev.eval_id, None)
    ev.close()


def no_score_requested() -> bool:
    """``inspect eval --no-score``: the judge is not needed (as lmms-eval's --predict_only)."""
    return "--no-score" in sys.argv[1:]


def log_location(eval_id: str) -> str | None:
    """Where inspect writes this evaluation's log: read from inspect's registry of running evaluations
    (not a public API of inspect-ai 0.3.285; ``None`` if it moved, and the file goes to SIUO_RESULTS_DIR)."""
    try:
        from inspect_ai._control.eval_state import get_eval_state

        state = get_eval_state(eval_id)
        return getattr(state, "log_location", None) or None
    except Exception:
        return None


def local_folder(location: str | None) -> Path | None:
    """The local path of a log location (``None`` for a remote one such as ``s3://``)."""
    if not location:
        return None
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(parts.path)
    if parts.scheme and len(parts.scheme) > 1:  # s3://, gs://, ... (a one-letter scheme is a Windows drive)
        return None
    return Path(location).resolve()


def decoding_of(config) -> dict:
    """The decoding fields a GenerateConfig sets (the others are the provider's defaults)."""
    return {name: getattr(config, name) for name in DECODING_FIELDS if getattr(config, name, None) is not None}


MAX_TOKENS_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_new_tokens")
NESTED_KEYS = ("generation_config", "generationConfig", "config", "inferenceConfig", "options", "sampling_params")


def sent_decoding(request) -> dict:
    """What a provider's raw request (inspect's ModelCall) says about decoding: ``temperature``,
    ``top_p`` and the token limit, where present (top level, or one level down as Google's)."""
    found: dict = {}
    if not isinstance(request, Mapping):
        return found
    layers = [request] + [request[k] for k in NESTED_KEYS if isinstance(request.get(k), Mapping)]
    for layer in layers:
        for key in ("temperature", "top_p"):
            if key in layer and key not in found:
                found[key] = layer[key]
        for key in MAX_TOKENS_KEYS:
            if key in layer and "max_tokens" not in found:
                found["max_tokens"] = layer[key]
    return found


def request_deviations(protocol: dict, sent: dict) -> dict:
    """Where a sent request decodes otherwise than the protocol asks: ``{field: what was sent}``
    (``"not sent"``: the provider dropped it, so the server's default applies)."""
    differs = {}
    for key in ("temperature", "top_p", "max_tokens"):
        if key not in protocol:
            continue
        if key not in sent:
            differs[key] = "not sent"
        elif sent[key] != protocol[key]:
            differs[key] = sent[key]
    return differs


class Evaluation:
    """One SIUO task evaluated with one model in one inspect run."""

    def __init__(self, task: str, spec, items: list, protocol, answers_per_item: int, epochs: int, samples: list):
        self.task = task
        self.setting = schema.setting_of(task)
        self.eval_id = spec.eval_id
        self.run_id = spec.run_id
        self.model = spec.model
        self.items_by_id = {item["question_id"]: item for item in items}
        self.epochs = epochs
        self.expected = [(sample.id, epoch) for sample in samples for epoch in range(1, epochs + 1)]
        self.answers: dict = {}  # (question_id, epoch) -> the answer (None: no text from the model)
        self.failure: str | None = None  # why SIUO failed this evaluation (the run then fails)
        self.exit_code = 0
        self.result: dict | None = None
        self.location: str | None = None
        self.judge = None
        plan = _plans.pop(spec.eval_id, None)
        used = decoding_of(plan) if plan is not None else None
        asked = decoding_of(protocol)
        self.asked = asked
        self.answers_per_item = answers_per_item
        self.request_deviations: dict = {}
        model_decoding = None
        differs = {k: v for k, v in (used or {}).items() if asked.get(k) != v}
        differs.update({k: None for k in asked if used is not None and k not in used})
        if epochs != answers_per_item:
            differs["epochs"] = epochs
        if differs:
            model_decoding = {**differs, "task": {**asked, "epochs": answers_per_item}}
            logger.warning(
                f"SIUO {task}: this run decodes with {differs}, not the protocol's {asked} "
                f"({answers_per_item} answer(s) per item); its numbers are labelled with that "
                "(provenance.harness.model_decoding) and are not comparable with the protocol's"
            )
        roles = sorted(getattr(spec, "model_roles", None) or {})
        if roles and schema.is_gen_task(task):
            logger.warning(
                f"SIUO {task}: the model role(s) {', '.join(roles)} are not used: SIUO's judge is set by SIUO_JUDGE_* "
                "(model, endpoint, key), and the result names it (provenance.judge)"
            )
        task_config = {"generation_kwargs": {**asked}}
        if answers_per_item > 1:
            task_config["repeats"] = answers_per_item
        self.call = HarnessCall(
            HARNESS,
            DISTRIBUTION,
            model=spec.model,
            model_args=dict(spec.model_args or {}),
            gen_kwargs=used,
            limit=getattr(spec.config, "limit", None),
            predict_only=no_score_requested(),
            extra={"eval_id": spec.eval_id, "run_id": spec.run_id, "inspect_task": spec.task, "epochs": epochs},
            result_path=self._result_path,
            found_in="the evaluation spec",
        )
        self.session = ScoringSession(
            task, self.call, task_config=task_config, model_decoding=model_decoding, info=logger.info, warning=logger.warning
        )
        if schema.is_gen_task(task) and not self.call.predict_only:
            from siuo_task.judge import JudgeClient

            from .judging import BatchJudge

            self.judge = BatchJudge(JudgeClient(self.session.judge_config))
            self.session.judge = self.judge

    # ------------------------------------------------------------------------------- lifecycle
    def fail(self, exc: BaseException, what: str = "") -> None:
        """SIUO failed this evaluation (the first reason stands): the run will fail, with exit 4 for an
        invalid result, 3 for an unusable judge, 1 otherwise (as ``siuo score``)."""
        if self.failure is not None:
            return
        from siuo_task.judge import JudgeUnavailable

        self.failure = f"{what}{type(exc).__name__}: {exc}"
        self.exit_code = 4 if isinstance(exc, schema.SIUOInvalidResult) else 3 if isinstance(exc, JudgeUnavailable) else 1

    def close(self) -> None:
        if self.judge is not None:
            self.judge.close()

    def _result_path(self, task: str) -> Path | None:
        """Beside the inspect log: ``<log dir>/<task>_<log name>.json`` (``None``: a remote log folder)."""
        path = local_folder(self.location)
        if path is None:
            return None
        return path.with_name(layouts.INSPECT_AI.siuo_name(layouts.INSPECT_AI.stamp(path, {}) or path.stem, task))

    def keep(self, question_id, epoch: int, answer) -> None:
        self.answers[(question_id, epoch)] = answer

    def check_request(self, request) -> None:
        """Compare what the provider really sent for a sample with the protocol (once per evaluation
        and field): inspect's OpenAI provider, for instance, drops ``temperature`` for model names it
        takes for reasoning models. A difference is logged and recorded in the result's provenance."""
        if request is None:
            return
        differs = {k: v for k, v in request_deviations(self.asked, sent_decoding(request)).items() if k not in self.request_deviations}
        if not differs:
            return
        self.request_deviations.update(differs)
        decoding = self.session.harness.setdefault("model_decoding", {"task": {**self.asked, "epochs": self.answers_per_item}})
        decoding["sent"] = dict(self.request_deviations)
        logger.warning(
            f"SIUO {self.task}: the model's requests decode otherwise than the protocol's {self.asked}: {differs} "
            "(as sent by the provider); the result records it (provenance.harness.model_decoding.sent) and its "
            "numbers are not comparable with the protocol's"
        )

    def records(self) -> list:
        """The session's records: every item's answers in epoch order; an answer inspect never got
        (a sample that errored, with --no-fail-on-error) is a generation failure (``None``)."""
        by_item: dict = {}
        for qid, epoch in self.expected:
            by_item.setdefault(qid, {})[epoch] = self.answers.get((qid, epoch))
        unanswered = sorted({qid for qid, epoch in self.expected if (qid, epoch) not in self.answers})
        if unanswered:
            logger.warning(
                f"SIUO {self.task}: no answer from inspect for question_id(s) {unanswered[:20]} (their samples errored); "
                "counted as generation failures"
            )
        if self.setting == schema.MCQA_SETTING:
            return [{"task": self.task, "question_id": qid, "response": answers[1]} for qid, answers in by_item.items()]
        return [
            {"task": self.task, "question_id": qid, "answers": [answers[e] for e in sorted(answers)]} for qid, answers in by_item.items()
        ]

    def score(self) -> dict:
        """The one scoring of this evaluation (blocking: the caller runs it in a worker thread)."""
        self.location = self.location or log_location(self.eval_id)
        if self.location is None or local_folder(self.location) is None:
            logger.warning(
                f"SIUO {self.task}: the inspect log's folder is {'unknown' if self.location is None else 'remote: ' + self.location}; "
                "the SIUO per-item file goes to SIUO_RESULTS_DIR or ./siuo_results"
            )
        self.result = self.session.score(self.records())
        return self.result


class TaskScoring:
    """inspect's task lifecycle for one SIUO task (see the module docstring). Never stops a sample."""

    def __init__(self, task: str, items: list, protocol, answers_per_item: int):
        self.task = task
        self.items = items
        self.protocol = protocol
        self.answers_per_item = answers_per_item

    async def start_task(self, task, samples, epochs: int) -> str:
        import anyio

        ev = Evaluation(self.task, task, self.items, self.protocol, self.answers_per_item, epochs, samples)
        _evaluations[ev.eval_id] = ev
        _current.set(ev)
        try:
            if self.task == schema.MCQA_TASK and epochs != 1:
                raise SIUOEvaluationError(
                    f"SIUO {self.task}: one answer per item (the protocol's); it was asked for {epochs} epochs. Run it without --epochs."
                )
            reducers = list(getattr(task.config, "epochs_reducer", None) or [REDUCER])
            if reducers != [REDUCER]:
                raise SIUOEvaluationError(
                    f"SIUO {self.task}: an item's verdict is the SIUO vote over its answers ({REDUCER}); "
                    f"it was asked to reduce them with {', '.join(reducers)}. Run it without --epochs-reducer."
                )
            if ev.judge is not None:
                await anyio.to_thread.run_sync(ev.session.preflight)
        except BaseException as exc:
            ev.fail(exc, "before generation: ")
            raise
        return "siuo_task: one scoring per task after every sample (never stops a sample early)"

    async def schedule_sample(self, id, epoch: int):
        return None

    async def complete_sample(self, id, epoch: int, scores: Mapping) -> None:
        ev = current()
        for sample_score in (scores or {}).values():
            metadata = sample_score.score.metadata or {}
            if metadata.get("siuo_task") == self.task:
                ev.keep(id, epoch, metadata.get("answer"))

    async def complete_task(self) -> dict:
        import anyio

        ev = current()
        if ev.judge is not None and ev.judge.fatal is not None:
            ev.fail(ev.judge.fatal, "the judge stopped: ")
        if ev.failure is not None:
            raise SIUOEvaluationError(f"SIUO {self.task}: {ev.failure}")
        if not ev.answers:  # scoring off (--no-score), or every sample errored: no number to give
            logger.warning(f"SIUO {self.task}: no sample was scored; no SIUO result is written")
            return {"siuo_result_file": None, "note": "no sample was scored"}
        try:
            result = await anyio.to_thread.run_sync(ev.score)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            ev.fail(exc)
            raise
        return {
            "siuo_result_file": str(ev.session.path) if ev.session.path else None,
            "valid": bool(result.get("valid", True)),
            "metrics": dict(result["metrics"]),
            "ci95": {k: v for k, v in (result.get("ci95") or {}).items()},
        }


def load_items(setting: str) -> tuple:
    """The validated items of ``setting`` (images checked), read when the task is built."""
    items, source = data.load_items(setting)
    logger.info(f"SIUO {setting}: {len(items)} items from {source.origin} ({source.data_dir})")
    return items, source
