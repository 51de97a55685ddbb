"""Prefill against decode at a given batch size (the child side of the GPU check's ``phases`` stage).

``python scripts/gpu_check.py _phases --model DIR --data DIR --device cuda --batch-sizes 1,64
--tokens 33 --json OUT`` loads the checkpoint once (bf16, lmms-eval's ``qwen2_5_vl`` pixel bounds)
and, for each batch size ``b``, runs the first ``b`` generation items through a bare transformers
``generate`` of ``--tokens`` new tokens, timed step by step (``--repeats`` calls, the fastest counting):
time to first token (the vision tower, the prompt's prefill and one step) against the mean decode
step after it. The host's share (chat template, image preprocessing, the processor) is timed apart from
``model.generate``. One warm-up call first (CUDA kernels load on the first call), not reported.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _peak_gib():
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


class StepClock:
    """A stopping criterion that stops nothing: it notes when each decoding step ends (``generate``
    calls it once per new token, after the step's forward pass and token choice)."""

    def __init__(self):
        self.stamps: list = []

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        if input_ids.is_cuda:
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def measure(ref, images: list, prompts: list, tokens: int, repeats: int = 3) -> dict:
    """Each of ``repeats`` calls of ``tokens`` new tokens is timed step by step: time to first token
    (the call's start to the end of step 1: vision tower, prefill, one token) and the mean decode step
    (step 1's end to the last step's end, over the steps between). The fastest call counts (other work
    on the machine only adds time)."""
    import torch
    from transformers import StoppingCriteriaList

    best = None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        clock = StepClock()
        start = time.perf_counter()
        ref.generate(images, prompts, max_new_tokens=tokens, stopping_criteria=StoppingCriteriaList([clock]))
        wall = time.perf_counter() - start
        if best is None or ref.last_generate_seconds < best["generate_s"]:
            best = {
                "wall_s": wall,
                "generate_s": ref.last_generate_seconds,
                "new_tokens": ref.last_new_tokens,
                "stamps": clock.stamps,
                "start": ref.last_generate_start,
                "peak_gpu_memory_gib": _peak_gib(),
            }
    b, stamps = len(images), best["stamps"]
    ttft = stamps[0] - best["start"] if stamps else None
    step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else None
    return {
        "batch_size": b,
        "input_tokens": ref.last_input_tokens,
        "tokens": tokens,
        "repeats": repeats,
        "steps_timed": len(stamps),
        "time_to_first_token_s": round(ttft, 4) if ttft is not None else None,
        "decode_step_s": round(step, 5) if step is not None else None,
        "generate_s": round(best["generate_s"], 4),
        "prefill_share_pct": round(100 * ttft / best["generate_s"], 1) if ttft is not None and best["generate_s"] else None,
        "host_preprocess_s": round(best["wall_s"] - best["generate_s"], 4),
        "tokens_per_s": round(best["new_tokens"] / best["generate_s"], 1) if best["generate_s"] else None,
        "peak_gpu_memory_gib": best["peak_gpu_memory_gib"],
        "fixed_length": best["new_tokens"] == b * tokens,
    }


def main(argv: list) -> None:
    from siuo_dev.lmms_eval_runs import QWEN_CLASS_PIXELS
    from siuo_dev.reference_generate import QwenVLReference, load_image, siuo_prompt
    from siuo_task.core.data import load_items

    p = argparse.ArgumentParser(prog="gpu_check.py _phases")
    for name in ("--model", "--data", "--device", "--json"):
        p.add_argument(name, required=True)
    p.add_argument("--batch-sizes", required=True, help="comma-separated, e.g. 1,64")
    p.add_argument("--tokens", type=int, required=True, help="new tokens of the full call (at least 2)")
    p.add_argument("--repeats", type=int, default=3, help="calls per batch size, the fastest counts (default 3)")
    a = p.parse_args(argv)
    if a.tokens < 2:
        raise SystemExit("_phases: --tokens must be at least 2 (the decode step is taken over the tokens after the first)")
    start = time.perf_counter()
    ref = QwenVLReference(a.model, device=a.device, dtype="bfloat16", **QWEN_CLASS_PIXELS)
    load_s = time.perf_counter() - start
    items = load_items("gen", a.data)[0]
    ref.generate([load_image(items[0]["image_path"])], [siuo_prompt("gen", items[0])], max_new_tokens=2)  # warm-up
    rows = []
    for b in (int(x) for x in a.batch_sizes.split(",") if x.strip()):
        batch = items[:b]
        if len(batch) < b:
            raise SystemExit(f"_phases: batch size {b} needs {b} items, the data has {len(items)}")
        rows.append(measure(ref, [load_image(i["image_path"]) for i in batch], [siuo_prompt("gen", i) for i in batch], a.tokens, a.repeats))
    Path(a.json).write_text(json.dumps({"load_s": round(load_s, 2), "rows": rows}), encoding="utf-8")
