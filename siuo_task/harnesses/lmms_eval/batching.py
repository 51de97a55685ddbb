"""What is known about ``--batch_size`` in lmms-eval's local model classes, by ``--model`` name.

One row per class SIUO's tests run, lmms-eval 0.7.3, measured with tiny random checkpoints on CPU
(``tests/test_local_models.py``; ``scripts/gpu_check.py --issue25 --stages classes``): whether the
class batches at all, how it pads a batch, and whether batched answers equal batch 1.

``recommended_batch_size`` is for the fastest batch size measured on a GPU with the answers checked
against batch 1 (``scripts/gpu_check.sh --issue25``). It stays ``None`` ("not measured") until that
measurement exists: no guessed number here. ``siuo doctor --model NAME`` reports the row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassBatching:
    batches: bool  # whether --batch_size > 1 runs at all
    same_answers_on_cpu: bool | None  # batched answers equal batch 1 (tiny model, CPU); None: the checkpoint decides
    finding: str
    advice: str | None = None  # what to do instead, where batching is not safe
    recommended_batch_size: int | None = None  # measured on a GPU; None: not measured
    measured_on: str | None = None  # the GPU and the events file the recommendation comes from


CLASSES = {
    "qwen2_5_vl": ClassBatching(
        batches=True, same_answers_on_cpu=True, finding="pads batches on the left; batched answers equal batch 1 on CPU"
    ),
    "qwen2_vl": ClassBatching(
        batches=True,
        same_answers_on_cpu=None,
        finding="passes no padding side, so the checkpoint's tokenizer decides how a batch is padded: padded on the "
        "right (transformers' default) 6 of 8 batched answers differed from batch 1 on CPU, padded on the "
        "left all equalled it",
        advice='use --batch_size 1 unless the checkpoint\'s tokenizer_config.json says "padding_side": "left"',
    ),
    "llava_hf": ClassBatching(
        batches=False,
        same_answers_on_cpu=None,
        finding="refuses --batch_size > 1 (an assertion in the class: the run stops when generation starts)",
        advice="use --batch_size 1",
    ),
}


def lookup(model: str | None) -> ClassBatching | None:
    return CLASSES.get(model or "")
