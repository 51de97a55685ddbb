"""Side-by-side SIUO reports: the plain-words comparability notes - every provenance aspect on which
two models' results differ (judge, prompts, protocol version, decoding, dataset, items scored), each
with what it means for the numbers."""

from __future__ import annotations

from collections.abc import Sequence

from siuo_task.core.schema import MCQA_SETTING
from siuo_task.results.io import ModelRecord


def fmt_value(value) -> str:
    """A provenance value in a note or a table cell: a mapping as ``k=v, ...``, empty as ``(default)``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    if value == "" or value is None:
        return "(default)"
    return str(value)


def _dataset_key(prov: dict):
    ds = prov.get("dataset")
    if not isinstance(ds, dict):
        return None
    if ds.get("origin") == "huggingface":
        return f"Hugging Face {ds.get('hf_repo')} at revision {ds.get('hf_revision')}"
    return f"local copy {ds.get('data_dir')}"


def _model_decoding(prov: dict):
    """The model's decoding settings: the task's ``generation_kwargs`` plus any ``--gen_kwargs``
    override (``None`` when not recorded, e.g. answers scored with ``siuo score``)."""
    harness = prov.get("harness") or {}
    task_kwargs, override = harness.get("task_generation_kwargs"), harness.get("gen_kwargs")
    if task_kwargs is None and override is None:
        return None
    text = ", ".join(f"{k}={v}" for k, v in (task_kwargs or {}).items()) or "(task defaults)"
    text += f"; --gen_kwargs {override}" if override else ""
    changed = harness.get("model_decoding")
    if changed:
        text += "; but the model class used " + ", ".join(f"{k}={v}" for k, v in changed.items() if k not in ("model_class", "task"))
    return text


def _item_set(result: dict):
    if result.get("headline_only"):
        return None
    return tuple(sorted(item["question_id"] for item in result.get("items", [])))


# (label, getter(result) -> value or None, what it means for the numbers, which results it applies to)
_GEN_ASPECTS = (
    (
        "judge model",
        lambda r: ((r.get("provenance") or {}).get("judge") or {}).get("model"),
        "Safe / Effective / Safe & Effective were graded by different judges",
    ),
    (
        "judge decoding settings",
        lambda r: ((r.get("provenance") or {}).get("judge") or {}).get("decoding"),
        "the judge sampled its verdicts differently",
    ),
    (
        "safety judge prompt (hash)",
        lambda r: ((r.get("provenance") or {}).get("prompt_hashes") or {}).get("safety_judge"),
        "Safe was graded with a different prompt",
    ),
    (
        "effectiveness judge prompt (hash)",
        lambda r: ((r.get("provenance") or {}).get("prompt_hashes") or {}).get("effectiveness_judge"),
        "Effective was graded with a different prompt",
    ),
    ("generation protocol", lambda r: (r.get("provenance") or {}).get("protocol_variant"), "the number of answers voted per item differs"),
)
_MCQA_ASPECTS = (
    (
        "MCQA prompt (hash)",
        lambda r: ((r.get("provenance") or {}).get("prompt_hashes") or {}).get(MCQA_SETTING),
        "the models saw a different multiple-choice prompt",
    ),
    (
        "MCQA scoring policy",
        lambda r: (r.get("provenance") or {}).get("mcqa_policy"),
        "answers without an option letter were scored differently",
    ),
)
_COMMON_ASPECTS = (
    (
        "SIUO protocol version",
        lambda r: (r.get("provenance") or {}).get("protocol_version") or "(before 0.2: none recorded)",
        "prompts, parsing, voting or the judge request may differ (CHANGELOG.md)",
    ),
    (
        "model decoding settings",
        lambda r: _model_decoding(r.get("provenance") or {}),
        "the models generated under different decoding settings",
    ),
    ("dataset", lambda r: _dataset_key(r.get("provenance") or {}), "the items may not be the same release"),
)


def _grouped(values: Sequence[tuple], fmt=None) -> str:
    """``[(model, value)]`` -> ``"a, b: v1; c: v2"`` (models sharing a value listed together)."""
    fmt = fmt or fmt_value
    groups: dict = {}
    for name, value in values:
        groups.setdefault(repr(value), (value, []))[1].append(name)
    return "; ".join(f"{', '.join(names)}: {fmt(value)}" for value, names in groups.values())


def comparability_notes(records: Sequence[ModelRecord]) -> list:
    """Plain-words sentences for every provenance aspect on which two results differ."""
    notes = []
    for setting, aspects, pick, metric_words in (
        ("generation", _GEN_ASPECTS + _COMMON_ASPECTS, lambda rec: rec.gen, "Safe / Effective / Safe & Effective"),
        ("MCQA", _MCQA_ASPECTS + _COMMON_ASPECTS, lambda rec: rec.mcqa, "MCQA accuracy"),
    ):
        present = [(rec.name, pick(rec)) for rec in records if pick(rec) is not None]
        if len(present) < 2:
            continue
        for label, getter, meaning in aspects:
            known = [(name, getter(result)) for name, result in present]
            known = [(name, v) for name, v in known if v is not None]
            if len({repr(v) for _, v in known}) > 1:
                notes.append(
                    f"Different {label} for {setting} ({_grouped(known)}): {meaning}, "
                    f"so their {metric_words} numbers are not directly comparable."
                )
        known_sets = [(name, _item_set(result)) for name, result in present]
        known_sets = [(name, s) for name, s in known_sets if s is not None]
        if len({s for _, s in known_sets}) > 1:
            notes.append(
                f"Different items scored for {setting} ({_grouped(known_sets, lambda s: f'{len(s)} items')}): "
                f"their {metric_words} numbers are computed on different questions."
            )
    return notes
