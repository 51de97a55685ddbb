"""Documents in, per-item records out: what every harness's task hooks share.

The documents are the validated SIUO items (images checked, not loaded); ``process_results``
records only ``question_id``, the item's image name and the answer(s) (it runs per rank, before the
gather, so it does no I/O); scoring happens once, in the aggregation
(:mod:`siuo_task.harnesses.session`), which then writes each item's score into that metric's
records (the harness computes its standard errors from them): each metric gets its own copy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from siuo_task.core import data, schema


def load_docs(setting: str, log: Callable[[str], None]):
    """The validated items of ``setting`` as a ``datasets.Dataset`` (images checked, not loaded)."""
    import datasets

    items, source = data.load_items(setting)
    log(f"SIUO {setting}: {len(items)} items from {source.origin} ({source.data_dir})")
    return datasets.Dataset.from_list(items)


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


def _per_metric(record: dict, doc: Mapping, names) -> dict:
    """One copy of the record per metric (the aggregation writes that metric's item score into it),
    with the item's image name, the harness's cluster for its clustered standard error."""
    record[schema.ITEM_CLUSTER_KEY] = doc.get(schema.ITEM_CLUSTER_KEY)
    return {name: dict(record) for name in names}


def mcqa_process_results(doc, results) -> dict:
    """Record ``question_id`` and the answer only: scoring happens once, in the aggregation."""
    record = {"task": schema.MCQA_TASK, "question_id": doc["question_id"], "response": answers_from_results(results)[0]}
    return _per_metric(record, doc, schema.MCQA_METRICS)


def make_gen_process_results(task: str) -> Callable:
    expected = schema.ANSWERS_PER_ITEM[task]

    def process_results(doc, results) -> dict:
        answers = answers_from_results(results)
        answers += [None] * (expected - len(answers))  # a reply the harness never handed over: no text, counted as such
        record = {"task": task, "question_id": doc["question_id"], "answers": answers}
        return _per_metric(record, doc, schema.GEN_METRICS)

    process_results.__name__ = f"{task}_process_results"
    return process_results
