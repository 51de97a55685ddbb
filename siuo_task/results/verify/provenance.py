"""What a result must record besides its numbers: the pinned dataset and prompts, the judge (never a
stand-in), its error limit, the model's decoding (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from siuo_task.core.data import HF_REPO, HF_REVISION
from siuo_task.core.prompts import PROMPT_HASHES
from siuo_task.core.schema import GEN_SETTING, PROTOCOL_VERSION
from siuo_task.core.scoring import check_max_error_rate
from siuo_task.results.verify.facts import HARNESS_NAMES
from siuo_task.results.verify.model import MISSING, STAND_IN, STAND_IN_LABEL, Checker, get

LIMIT_PATH = "provenance.judge.max_error_rate"
DRY_RUN_PATH = "provenance.judge.dry_run"


def stand_in_judge(result) -> str | None:
    """Why ``result`` was graded by a judge the package knows to be a stand-in (the dry-run judge of
    ``python -m siuo_task.judge.dry_run``, whose replies the judge client marks), else ``None``."""
    if get(result, DRY_RUN_PATH) is True:
        return f"graded by the dry-run judge (python -m siuo_task.judge.dry_run): {STAND_IN_LABEL}"
    return None


def check_judge(result: Mapping, check: Checker) -> None:
    """The judge of a generation result: recorded (model, endpoint host, decoding) and not a stand-in."""
    judge = get(result, "provenance.judge")
    if not isinstance(judge, Mapping):  # absent or null (the shape allows nothing else)
        check.fail("provenance.judge", None, "model, endpoint_host, decoding", "the judge is not recorded")
        return
    for key in ("model", "endpoint_host"):
        if not isinstance(judge.get(key), str) or not judge.get(key):
            check.fail(f"provenance.judge.{key}", judge.get(key), "recorded", "the judge is not fully recorded")
    decoding = judge.get("decoding")
    if not isinstance(decoding, Mapping) or not decoding:
        check.fail("provenance.judge.decoding", decoding, "temperature, max_tokens", "the judge's decoding is not recorded")
    elif all(isinstance(judge.get(k), str) and judge.get(k) for k in ("model", "endpoint_host")):
        check.agree(f"provenance.judge: {judge['model']} at {judge['endpoint_host']}, decoding {dict(decoding)}")
    why = stand_in_judge(result)
    if why is not None:
        check.fail(DRY_RUN_PATH, True, False, why, STAND_IN)
    elif judge.get("dry_run") is not False:
        check.fail(
            DRY_RUN_PATH,
            judge.get("dry_run"),
            False,
            "not recorded whether the judge was the dry-run stand-in: the verdicts may mean nothing",
            STAND_IN,
        )


def recorded_limit(result: Mapping, check: Checker) -> float | None:
    """The judge-error limit the result records (a number in [0, 1]), or ``None`` after naming why it
    can't be used: without it the validity of the result cannot be recomputed."""
    value = get(result, LIMIT_PATH)
    if value is MISSING:
        check.fail(LIMIT_PATH, None, "a number in [0, 1]", "the judge error limit is not recorded: validity cannot be recomputed")
        return None
    try:
        return check_max_error_rate(value)
    except ValueError:
        check.fail(LIMIT_PATH, value, "a number in [0, 1]", "the judge error limit is not a share: validity cannot be recomputed")
        return None


def check_provenance(result: Mapping, setting: str, check: Checker) -> None:
    prov = result["provenance"]  # an object: the shape is checked first
    dataset = prov.get("dataset")
    if not isinstance(dataset, Mapping):
        check.fail("provenance.dataset", None, "the dataset's origin and revision", "dataset not recorded")
    elif dataset.get("origin") == "huggingface":
        check.field(result, "provenance.dataset.hf_repo", HF_REPO, note="pinned dataset")
        check.field(result, "provenance.dataset.hf_revision", HF_REVISION, note="pinned dataset revision")
    else:
        check.note(
            f"dataset: a local copy ({dataset.get('origin')}: {dataset.get('data_dir')}) with no hub revision; "
            "item ids, categories and the answer key are checked instead"
        )
    version = prov.get("protocol_version", MISSING)
    if version is MISSING:
        check.note(f"no protocol version recorded (written by siuo-task 0.1): recomputed under protocol {PROTOCOL_VERSION}")
    elif version == PROTOCOL_VERSION:
        check.agree(f"provenance.protocol_version: {PROTOCOL_VERSION}")
    else:
        check.fail(
            "provenance.protocol_version",
            version,
            PROTOCOL_VERSION,
            "written under another SIUO protocol version: verify it with the siuo-task release of that version",
        )
    names = ("safety_judge", "effectiveness_judge") if setting == GEN_SETTING else ("mcqa",)
    for name in names:
        check.field(result, f"provenance.prompt_hashes.{name}", PROMPT_HASHES[name], note="pinned prompt text")
    harness = prov.get("harness")
    harness_name = harness.get("name") if isinstance(harness, Mapping) else None
    if harness_name in HARNESS_NAMES:
        kwargs = harness.get("task_generation_kwargs")
        if not isinstance(kwargs, Mapping) or not kwargs:
            check.fail("provenance.harness.task_generation_kwargs", kwargs, "the task's decoding", "the model's decoding is not recorded")
        else:
            check.agree("provenance.harness.task_generation_kwargs: recorded")
        if harness.get("model_decoding"):
            check.note(f"the model class decoded otherwise than the protocol: {harness['model_decoding']}")
    elif harness_name == "siuo score":
        check.note("answers scored from a file (siuo score): the model's decoding is not recorded by the scorer")
    else:
        check.note(f"harness not recorded or unknown ({harness_name!r}): the model's decoding is unknown")
    if setting == GEN_SETTING:
        check_judge(result, check)
