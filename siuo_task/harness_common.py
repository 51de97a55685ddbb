"""What the harness adapters share: documents, images, per-item records, scoring once, result files.

Nothing here imports a harness. The lmms-eval and lm-eval adapters differ only in how they get the
harness's settings (output folder, model arguments) and which logger they write to; everything
that decides a number lives in :mod:`siuo_task.scoring`, reached through :class:`RecordScorer`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Callable, Mapping, Optional

from . import data, scoring
from .mcqa import POLICIES

ENV_MCQA_POLICY = "SIUO_MCQA_POLICY"
ENV_JUDGE_PREFLIGHT = "SIUO_JUDGE_PREFLIGHT"
ENV_RESULTS_DIR = "SIUO_RESULTS_DIR"
RESULTS_SUBDIR = "siuo"
DEFAULT_RESULTS_DIR = "siuo_results"

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


def judge_preflight(log: Callable[[str], None], *, skip: bool = False, harness_name: str = "") -> None:
    """Fail before generation, not after an hour of GPU time, when the judge can't be used.

    ``skip`` (the harness runs predict-only) or ``SIUO_JUDGE_PREFLIGHT=0`` turns the check off.
    """
    if skip or os.environ.get(ENV_JUDGE_PREFLIGHT, "1") == "0":
        return
    from .judge import JudgeClient, JudgeConfig

    config = JudgeConfig.from_env()
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
    placeholder for a missing reply) becomes ``""``.
    """
    results = list(results or [])
    if results and isinstance(results[0], (list, tuple)):
        results = list(results[0])
    return [a if isinstance(a, str) else "" for a in results] or [""]


def mcqa_process_results(doc, results) -> dict:
    """Record ``question_id`` and the answer only: scoring happens once, in the aggregation."""
    record = {"task": "siuo_mcqa", "question_id": doc["question_id"], "response": answers_from_results(results)[0]}
    return {"accuracy": record, "unparsed": record}


def make_gen_process_results(task: str) -> Callable:
    def process_results(doc, results) -> dict:
        record = {"task": task, "question_id": doc["question_id"], "answers": answers_from_results(results)}
        return {name: record for name in scoring.GEN_METRICS}

    process_results.__name__ = f"{task}_process_results"
    return process_results


# ------------------------------------------------------------------------------------ provenance, I/O

_SECRET_PARTS = ("key", "token", "secret", "password")


def redact_model_args(model_args):
    """Model arguments with secret-looking values hidden (``a=1,api_key=x`` or a dict)."""
    if isinstance(model_args, Mapping):
        return {k: ("<redacted>" if any(s in str(k).lower() for s in _SECRET_PARTS) else v) for k, v in model_args.items()}
    if not isinstance(model_args, str):
        return model_args
    parts = []
    for part in model_args.split(","):
        key = part.split("=", 1)[0]
        parts.append(f"{key}=<redacted>" if any(s in key.lower() for s in _SECRET_PARTS) else part)
    return ",".join(parts)


def harness_info(name: str, distribution: str, task_config: Optional[Mapping], args, fields: tuple = ()) -> dict:
    """The ``harness`` part of a result's provenance, the same for every adapter.

    ``task_config`` is the task's YAML as the harness loads it (its decoding settings are recorded;
    ``--gen_kwargs`` overrides appear under ``gen_kwargs``); ``args`` are the harness's CLI arguments,
    if known; ``fields`` names extra CLI arguments worth recording.
    """
    try:
        from importlib.metadata import version

        harness_version = version(distribution)
    except Exception:  # pragma: no cover
        harness_version = None
    generation = None
    if task_config is not None:
        generation = dict(task_config.get("generation_kwargs") or {})
        if task_config.get("repeats"):
            generation["repeats"] = task_config["repeats"]
    info = {"name": name, "version": harness_version, "task_generation_kwargs": generation}
    if args is not None:
        info["model"] = getattr(args, "model", None)
        info["model_args"] = redact_model_args(getattr(args, "model_args", None))
        info["gen_kwargs"] = getattr(args, "gen_kwargs", None)
        info["limit"] = getattr(args, "limit", None)
        for field in fields:
            info[field] = getattr(args, field, None)
    return info


def results_folder(output_path: Optional[str | os.PathLike] = None) -> Path:
    """Where result files go: ``SIUO_RESULTS_DIR``, else ``<output_path>/siuo``, else ``./siuo_results``.

    An ``output_path`` naming a ``.json`` file (lm-eval allows that) means its folder.
    """
    env = os.environ.get(ENV_RESULTS_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    if output_path:
        base = Path(output_path).expanduser()
        if base.suffix == ".json":
            base = base.parent
        return base / RESULTS_SUBDIR
    return Path.cwd() / DEFAULT_RESULTS_DIR


def write_result(result: dict, folder: Path) -> Path:
    """Write ``<folder>/<task>_<timestamp>_<pid>.json`` atomically.

    Microseconds and the pid: runs of several models share the folder and may finish in the same second.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d_%H%M%S_%f")
    path = folder / f"{result['task']}_{stamp}_{os.getpid()}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


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
        return f"SIUO {result['task']}: {failures} model request(s) failed; they are counted, not scored as answers"
    return None


# ---------------------------------------------------------------------------------------- aggregation


class RecordScorer:
    """Scores the records ``process_results`` produced, once per distinct set of answers.

    A task reports several metrics (MCQA: accuracy and unparsed; generation: safe, effective,
    safe_effective) and the harness aggregates each separately, handing every aggregation the same
    records. The first call scores (for generation: one judging pass) and writes the result file;
    the others reuse the memoised result.
    """

    def __init__(self, harness_name: str, info: Callable[[str], None], warning: Callable[[str], None]):
        self.harness_name = harness_name
        self._info = info
        self._warning = warning
        self._memo: dict = {}
        self._lock = threading.Lock()
        self.last_path: Optional[Path] = None

    def reset(self) -> None:
        """Forget earlier results (a new evaluation in the same process scores and writes afresh)."""
        with self._lock:
            self._memo.clear()
            self.last_path = None

    def score(self, records: list, *, harness: Optional[dict] = None, output_path=None) -> dict:
        key = hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()
        with self._lock:
            if key in self._memo:
                result = self._memo[key]
                scoring.check_valid(result, self.last_path)  # every aggregation of an invalid result fails
                return result
            result = score_records(records, harness=harness)
            path = write_result(result, results_folder(output_path))
            self.last_path = path
            self._info(format_table(result, path))
            warning = failure_warning(result)
            if warning:
                self._warning(warning)
            self._memo[key] = result
            scoring.check_valid(result, path)  # written first, then the harness run fails
            return result

    def metric(self, name: str, context: Callable[..., tuple[Optional[dict], object]]) -> Callable:
        """An aggregation function for metric ``name``.

        ``context(task, *extra)`` gives (harness info, output path); ``extra`` is whatever the harness
        passes after the records (lmms-eval: its CLI ``args``; lm-eval: nothing).
        """

        def aggregate(records, *args, **kwargs):
            task = records[0]["task"] if records else None
            harness, output_path = context(task, *args, **kwargs)
            try:
                return self.score(records, harness=harness, output_path=output_path)["metrics"][name]
            except Exception as exc:
                _escape_if_swallowed(self.harness_name, exc)
                raise

        aggregate.__name__ = f"siuo_aggregate_{name}"
        return aggregate


def mcqa_policy() -> str:
    policy = os.environ.get(ENV_MCQA_POLICY, "official")
    if policy not in POLICIES:
        raise ValueError(f"{ENV_MCQA_POLICY}={policy!r}: expected one of {', '.join(POLICIES)}")
    return policy


def score_records(records: list, *, harness: Optional[dict] = None) -> dict:
    """Score the records of one task (all items' answers) through :mod:`siuo_task.scoring`."""
    if not records:
        raise scoring.SIUOScoringError("SIUO: no answers to score (the harness produced no per-item records)")
    task = records[0]["task"]
    if task == "siuo_mcqa":
        items, source = data.load_items("mcqa", check_images=False)
        responses = {r["question_id"]: r["response"] for r in records}
        return scoring.score_mcqa(responses, items, policy=mcqa_policy(), source=source, harness=harness)

    from .judge import JudgeClient, JudgeConfig

    items, source = data.load_items("gen", check_images=False)
    answers = {r["question_id"]: r["answers"] for r in records}
    with JudgeClient(JudgeConfig.from_env()) as client:
        result = scoring.score_gen(answers, items, client, source=source, harness=harness, variant=scoring.gen_variant(task, answers))
    result["task"] = task
    return result
