"""The GPU check's ``big`` stage (``scripts/gpu_check.py`` without ``--issue25``): what lmms-eval
and SIUO's plugin cost over a bare transformers loop on the same model and items.

A Qwen2.5-VL-7B-Instruct-shaped model with random bf16 weights (:mod:`siuo_dev.gpu_checkpoints`)
answers the same SIUO items through (a) a bare ``generate`` loop (:func:`cmd_bare`, run as
``scripts/gpu_check.py _bare``) and (b) lmms-eval's ``qwen2_5_vl`` chat class
(:func:`siuo_dev.gpu_runs.timed_run`), each in a fresh process; events ``big_bare``,
``big_harness``, ``big_summary`` and, with repeats, ``big_repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from siuo_dev.gpu_events import emit
from siuo_dev.gpu_runs import SCRIPT, error_text, pythonpath_env
from siuo_dev.lmms_eval_runs import QWEN_CLASS_PIXELS


def stage_big(
    work: Path,
    data_dir: Path,
    device: str,
    size: str,
    limit: int,
    max_new_tokens: int,
    batch_size: int,
    grad_modes: tuple = ("inference",),
    repeats: int = 1,
) -> bool:
    from siuo_dev.gpu_checkpoints import ensure_big_model

    model_dir = ensure_big_model(work, size, device)
    ok = True
    ratios = []
    # bare and harness alternate, each in a fresh process: with --repeats > 1 the spread between
    # repeats shows how much of a difference is process-to-process noise
    for repeat in range(repeats):
        bares = {}
        for grad_mode in grad_modes:
            bares[grad_mode] = _big_bare(work, model_dir, data_dir, device, limit, max_new_tokens, batch_size, grad_mode, repeat)
            if bares[grad_mode] is None:
                return False
        harness = _big_harness(work, model_dir, data_dir, device, size, limit, max_new_tokens, batch_size, repeat)
        if harness is None:
            return False
        ok &= harness["ok"] and all(b["fixed_length"] for b in bares.values())
        summary = _big_summary(
            bares[grad_modes[0]],
            bares.get("no_grad"),
            harness,
            size=size,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            repeat=repeat,
        )
        ratios.append(summary["harness_over_bare"])
    if repeats > 1 and all(r is not None for r in ratios):
        emit(
            "big_repeats",
            repeats=repeats,
            harness_over_bare=ratios,
            min=min(ratios),
            max=max(ratios),
            median=round(statistics.median(ratios), 3),
        )
    return ok


def _big_bare(work, model_dir, data_dir, device, limit, max_new_tokens, batch_size, grad_mode, repeat) -> dict | None:
    """(a) the bare transformers loop, in a fresh process."""
    import subprocess

    from siuo_dev.lmms_eval_runs import PYTHON

    bare_json = work / "bare.json"
    bare_json.unlink(missing_ok=True)
    cmd = [
        PYTHON,
        str(SCRIPT),
        "_bare",
        "--model",
        str(model_dir),
        "--data",
        str(data_dir),
        "--device",
        device,
        "--limit",
        str(limit),
        "--max-new-tokens",
        str(max_new_tokens),
        "--batch-size",
        str(batch_size),
        "--grad-mode",
        grad_mode,
        "--json",
        str(bare_json),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **pythonpath_env(), "HF_HUB_OFFLINE": "1"})
    bare_wall = time.perf_counter() - t0
    if proc.returncode != 0 or not bare_json.exists():
        emit("big_bare", repeat=repeat, grad_mode=grad_mode, ok=False, error=error_text(proc.stdout + proc.stderr))
        return None
    bare = json.loads(bare_json.read_text())
    emit(
        "big_bare",
        repeat=repeat,
        grad_mode=grad_mode,
        ok=bare["fixed_length"],
        wall_seconds=round(bare_wall, 1),
        **bare,
        **({} if bare["fixed_length"] else {"error": f"bare answers are not all {max_new_tokens} tokens"}),
    )
    return bare


def _big_harness(work, model_dir, data_dir, device, size, limit, max_new_tokens, batch_size, repeat) -> dict | None:
    """(b) lmms-eval's qwen2_5_vl chat class, fresh process, generation phase timed from inside."""
    from siuo_dev.gpu_runs import timed_run

    timed = timed_run(
        f"big_{size}", work, data_dir, "qwen2_5_vl", model_dir, device=device, batch_size=batch_size, limit=limit, tokens=max_new_tokens
    )
    run = timed.run
    record = {"repeat": repeat, "cli_seconds": round(run.seconds, 1)}
    ok, error = timed.ok, timed.error
    if ok:
        try:
            record["backend"] = run.backend()
            efficiency = run.results()["efficiency"]["overall"]
            record["output_tokens"] = efficiency["total_output_tokens"]
            assert efficiency["avg_output_tokens_per_sample"] == max_new_tokens, (
                f"answers are not all {max_new_tokens} tokens: {efficiency}"
            )
        except (AssertionError, KeyError) as exc:
            ok, error = False, error_text(f"{type(exc).__name__}: {exc}")
    if error:
        record["error"] = error
    untils = [r for r in timed.records if r["kind"] == "generate_until"]
    calls = [r for r in timed.records if r["kind"] == "generate"]
    if not untils:
        record.update(ok=False, error=record.get("error", "") + " | no generation timing recorded; log tail: " + run.log[-2000:])
        emit("big_harness", **record)
        return None
    gen_seconds = sum(u["seconds"] for u in untils)
    items = sum(u["requests"] for u in untils)
    record.update(
        ok=ok,
        items=items,
        generate_seconds=round(gen_seconds, 3),
        items_per_s=round(items / gen_seconds, 3),
        model_generate_seconds=round(sum(c["seconds"] for c in calls), 3),
        siuo_hook_seconds=round(sum(u.get("siuo_hook_seconds") or 0.0 for u in untils), 4),
        peak_gpu_memory_gib=max((c["peak_gpu_memory_gib"] for c in calls if c.get("peak_gpu_memory_gib") is not None), default=None),
    )
    emit("big_harness", **record)
    return record


def _big_summary(bare: dict, no_grad: dict | None, harness: dict, **fields) -> dict:
    items = harness["items"]
    ratio = harness["items_per_s"] / bare["items_per_s"] if bare["items_per_s"] else None

    # Where the harness's extra time per item goes: SIUO's own hooks (building the request: prompt,
    # image), the model class's model.generate call vs the bare loop's, and the rest of the class's
    # generate_until (chat template, processor, decoding, bookkeeping).
    def per_item(seconds):
        return round(seconds / items, 4) if items else None

    gen, model_gen, hooks = harness["generate_seconds"], harness["model_generate_seconds"], harness["siuo_hook_seconds"]
    return emit(
        "big_summary",
        items=items,
        **fields,
        bare_items_per_s=bare["items_per_s"],
        harness_items_per_s=harness["items_per_s"],
        harness_over_bare=round(ratio, 3) if ratio else None,
        overhead_pct=round(100 * (1 / ratio - 1), 1) if ratio else None,
        siuo_hooks_pct=round(100 * hooks / bare["generate_seconds"], 2) if bare["generate_seconds"] else None,
        bare_no_grad_items_per_s=no_grad["items_per_s"] if no_grad else None,
        harness_over_bare_no_grad=round(harness["items_per_s"] / no_grad["items_per_s"], 3) if no_grad else None,
        extra_seconds_per_item=per_item(gen - bare["generate_seconds"]),
        siuo_hooks_seconds_per_item=per_item(hooks),
        model_generate_extra_seconds_per_item=per_item(model_gen - bare["model_generate_seconds"]),
        class_rest_extra_seconds_per_item=per_item((gen - model_gen - hooks) - (bare["generate_seconds"] - bare["model_generate_seconds"])),
        bare_peak_gpu_memory_gib=bare.get("peak_gpu_memory_gib"),
        harness_peak_gpu_memory_gib=harness["peak_gpu_memory_gib"],
        harness_cli_seconds=harness["cli_seconds"],
    )


def _peak_gib():
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def cmd_bare(argv) -> None:
    """A bare transformers generate loop over the first --limit items of each setting."""
    import torch

    from siuo_dev.reference_generate import QwenVLReference, load_image, siuo_prompt
    from siuo_task.core.data import load_items

    p = argparse.ArgumentParser(prog="gpu_check.py _bare")
    for name in ("--model", "--data", "--device", "--json"):
        p.add_argument(name, required=True)
    p.add_argument("--limit", type=int, required=True)
    p.add_argument("--max-new-tokens", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument(
        "--grad-mode",
        default="inference",
        choices=("inference", "no_grad"),
        help="inference: torch.inference_mode() as in the model cards; no_grad: generate's own no_grad, "
        "as lmms-eval's Qwen classes call it",
    )
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    ref = QwenVLReference(a.model, device=a.device, dtype="bfloat16", **QWEN_CLASS_PIXELS)
    load_s = time.perf_counter() - t0
    work = [(s, item) for s in ("mcqa", "gen") for item in load_items(s, a.data)[0][: a.limit]]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    tokens, model_generate, t0 = 0, 0.0, time.perf_counter()
    for start in range(0, len(work), a.batch_size):
        batch = work[start : start + a.batch_size]
        images = [load_image(item["image_path"]) for _, item in batch]  # opened per item, as the harness does
        ref.generate(images, [siuo_prompt(s, item) for s, item in batch], max_new_tokens=a.max_new_tokens, grad_mode=a.grad_mode)
        tokens += ref.last_new_tokens
        model_generate += ref.last_generate_seconds
    seconds = time.perf_counter() - t0
    expected = a.max_new_tokens * len(work)
    Path(a.json).write_text(
        json.dumps(
            {
                "items": len(work),
                "generate_seconds": round(seconds, 3),
                "items_per_s": round(len(work) / seconds, 3),
                "model_generate_seconds": round(model_generate, 3),
                "output_tokens": tokens,
                "fixed_length": tokens == expected,
                "load_seconds": round(load_s, 1),
                "peak_gpu_memory_gib": _peak_gib(),
            }
        )
    )
