#!/usr/bin/env python3
"""GPU check of SIUO's local-model path: lmms-eval's own model classes, random weights, no downloads.

Stages (each prints JSON lines, ``{"event": ...}``, and appends them to ``<out>/gpu_check.jsonl``):

1. ``env``: torch / CUDA / transformers / lmms-eval versions and the device.
2. ``tiny``: tiny random Qwen2-VL (``qwen2_vl`` simple class), Qwen2.5-VL (``qwen2_5_vl`` chat class,
   batch 2) and LLaVA (``llava_hf`` chat class) through the lmms-eval CLI on ``--device``, siuo_mcqa
   and siuo_gen with a fake judge on 127.0.0.1, checked like the CPU tests (items, numbers, judge
   calls; see ``siuo_dev/lmms_eval_runs.py``).
3. ``big`` (skipped by ``--tiny-only``): a Qwen2.5-VL-7B-Instruct-shaped model with random bf16
   weights built on the device, then the same SIUO items (``--limit`` per setting) through
   (a) a bare transformers ``generate`` loop and (b) lmms-eval's ``qwen2_5_vl`` chat class, both
   in fresh processes, every answer exactly ``--max-new-tokens`` long (the random model's output
   layer has no EOS row: see ``siuo_dev/tiny_models.steer_lm_head_``; the class drops
   ``min_new_tokens``). Reports items/s of each generation phase, their ratio (the harness and
   plugin overhead), the CLI's wall time, and peak GPU memory (``torch.cuda.max_memory_allocated``).
   Where the harness's extra time goes is measured, not guessed: inside the harness run SIUO's
   request hooks and the class's ``model.generate`` call are timed, and the bare loop times its own
   ``generate``; ``--bare-grad-modes inference,no_grad`` (default) also runs the bare loop without
   ``torch.inference_mode`` (as lmms-eval's Qwen classes call ``generate``). ``--repeats N``
   alternates bare and harness N times: single runs on a shared machine differ by several percent,
   so a gap means something only beyond the spread of the repeats. The stage: ``siuo_dev/gpu_overhead.py``.

Data: the SIUO release JSON when found (``SIUO_DATA_DIR`` or ``../shared/siuo``), with placeholder
images; otherwise a synthetic release of the same shape (167 made-up items) - timing needs the
shape, not the text. Images are ``--image-size`` placeholders (default 896x672 for the big model)
(``siuo_dev/gpu_data.py``).

``--issue25`` runs the batch-size stages instead (``siuo_dev/gpu_issue25.py``; settings and plan:
``siuo_dev/gpu_settings.py``).

    bash scripts/gpu_check.sh                                  # on the GPU machine (installs .whl/ first)
    python scripts/gpu_check.py --device cpu --tiny-only       # CPU-runnable parts, here
    python scripts/gpu_check.py --device cpu --big-size tiny --limit 2 --max-new-tokens 8   # the big path, tiny
    bash scripts/gpu_check.sh --skip-tiny --limit 3 --max-new-tokens 192 --repeats 2         # overhead only (~5 min on an H200)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from siuo_dev.gpu_data import prepare_data  # noqa: E402
from siuo_dev.gpu_events import LOG as _LOG  # noqa: E402
from siuo_dev.gpu_events import emit, open_log  # noqa: E402
from siuo_dev.gpu_runs import error_text as _error_text  # noqa: E402
from siuo_dev.gpu_runs import fresh as _fresh  # noqa: E402
from siuo_dev.gpu_runs import include_path_args as _include_path_args  # noqa: E402
from siuo_dev.gpu_runs import pythonpath_env as _pythonpath_env  # noqa: E402

# ------------------------------------------------------------------------------------------- stages


def stage_env(device: str) -> dict:
    import importlib.metadata as md

    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "device": device}
    for dist in ("transformers", "lmms_eval", "accelerate", "tokenizers", "qwen-vl-utils", "siuo-task"):
        try:
            info[dist] = md.version(dist)
        except md.PackageNotFoundError:
            info[dist] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda but torch sees no GPU (torch.cuda.is_available() is False)")
    return emit("env", **info)


def stage_tiny(work: Path, data_dir: Path, device: str, limit: int) -> bool:
    from siuo_dev import tiny_models
    from siuo_dev.lmms_eval_runs import (
        check_gen,
        check_mcqa,
        model_run_args,
        reference_mismatches,
        run_lmms_eval,
    )

    device_map = "cuda" if device.startswith("cuda") else "cpu"
    pixels = "max_pixels=12544,min_pixels=3136"
    t0 = time.perf_counter()
    models = {
        "qwen2_vl": tiny_models.build_tiny_qwen2_vl(work / "tiny" / "qwen2_vl"),
        "qwen2_5_vl": tiny_models.build_qwen2_5_vl(work / "tiny" / "qwen2_5_vl"),
        "llava": tiny_models.build_tiny_llava(work / "tiny" / "llava"),
    }
    emit("tiny_build", seconds=round(time.perf_counter() - t0, 1), models={k: str(v) for k, v in models.items()})
    cases = [
        (
            "qwen2_vl",
            models["qwen2_vl"],
            f"pretrained={models['qwen2_vl']},device_map={device_map},{pixels}",
            1,
            {"dtype": "auto", "simple_path": True},
        ),
        (
            "qwen2_5_vl",
            models["qwen2_5_vl"],
            f"pretrained={models['qwen2_5_vl']},device_map={device_map},{pixels}",
            2,
            {"dtype": "bfloat16"},
        ),
        ("llava_hf", models["llava"], f"pretrained={models['llava']},device_map={device_map}", 1, None),
    ]
    all_ok = True
    for model, path, model_args, batch_size, reference in cases:
        args = (
            model_run_args(model, model_args, "siuo_mcqa,siuo_gen", limit, device=device, batch_size=batch_size, max_new_tokens=8)
            + _include_path_args()
        )
        run = run_lmms_eval(_fresh(work / "runs" / f"tiny_{model}"), data_dir, args, extra_env=_pythonpath_env())
        record = {"model": model, "batch_size": batch_size, "cli_seconds": round(run.seconds, 1)}
        try:
            record["backend"] = run.backend()
            record["mcqa"] = check_mcqa(run, data_dir, limit)["metrics"]
            record["gen"] = check_gen(run, data_dir, limit)["metrics"]
            record["judge_calls"] = len(run.judge_requests)
            record["ok"] = True
        except AssertionError as exc:
            record.update(ok=False, error=_error_text(str(exc)))
            all_ok = False
        if record["ok"] and reference is not None:
            # Exact on CPU (the CPU tests assert it); on a GPU, kernels differ with batch shape, so
            # a near-tie can flip a greedy token: reported, not a failure.
            mismatches = reference_mismatches(path, data_dir, run.answers(), device=device, max_new_tokens=8, **reference)
            record["reference_mismatches"] = len(mismatches)
        emit("tiny", **record)
    return all_ok


# -------------------------------------------------------------------------------------------- main


def run_issue25(a, work: Path) -> bool:
    from siuo_dev.gpu_checkpoints import ensure_big_model
    from siuo_dev.gpu_issue25 import Issue25
    from siuo_dev.gpu_settings import plan, settings_from_args

    settings = settings_from_args(a)
    stage_env(settings.device)
    data, origin = prepare_data(work, settings.image_size)
    emit("data", origin=origin, path=str(data), image_size=list(settings.image_size))
    plan(settings)
    model_dir = ensure_big_model(work, settings.size, settings.device)
    ok = Issue25(settings, work, data, model_dir).run_all()
    emit("issue25_done", ok=ok)
    return ok


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_bare":
        from siuo_dev.gpu_overhead import cmd_bare

        cmd_bare(argv[1:])
        return 0
    if argv and argv[0] == "_timed_lmms_eval":
        from siuo_dev.gpu_timing import main as timed_main

        timed_main(argv[1:])
        return 0
    if argv and argv[0] == "_phases":
        from siuo_dev.gpu_phases import main as phases_main

        phases_main(argv[1:])
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cuda (default) or cpu")
    p.add_argument("--out", default="gpu_check_out", help="folder for gpu_check.jsonl and the runs (default ./gpu_check_out)")
    p.add_argument("--work", default=None, help="scratch folder for checkpoints and data (default <out>/work)")
    p.add_argument("--tiny-only", action="store_true", help="skip the 7B-shaped stage")
    p.add_argument("--skip-tiny", action="store_true", help="skip the tiny-model stage (e.g. a second timing run)")
    p.add_argument(
        "--big-size", default=None, choices=("7b", "tiny"), help="the big stage's model ('tiny' tests the path on CPU; default 7b)"
    )
    p.add_argument("--tiny-limit", type=int, default=4, help="items per setting for the tiny models (default 4)")
    p.add_argument("--limit", type=int, default=8, help="items per setting for the big model (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="fixed answer length for the big model (default 64)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size for the big model, both paths (default 1)")
    p.add_argument(
        "--repeats", type=int, default=1, help="big stage: measure bare loop and harness this many times, alternating (default 1)"
    )
    p.add_argument(
        "--bare-grad-modes",
        default="inference,no_grad",
        help="bare-loop variants, the first is the baseline: inference (torch.inference_mode, the model "
        "cards' loop) and no_grad (how lmms-eval's Qwen classes call generate); default both",
    )
    p.add_argument("--image-size", default=None, help="placeholder image size WxH for the big model (default 896x672)")
    g = p.add_argument_group("batch-size stages (--issue25; see siuo_dev/gpu_issue25.py and siuo_dev/gpu_settings.py)")
    g.add_argument("--issue25", action="store_true", help="run the batch-size stages instead of the tiny and big stages")
    g.add_argument("--dry-run", action="store_true", help="with --issue25: CPU, tiny model, 4 items, 8 tokens: every stage end to end")
    g.add_argument("--stages", help="comma-separated subset of full,invariance,phases,sweep,model_args,classes (default all)")
    g.add_argument("--batch-sizes", help="batch sizes of the sweep (default 1,16,64)")
    g.add_argument("--full-batch", type=int, help="batch size of the measured full run (default the largest of --batch-sizes)")
    g.add_argument("--full-limit", type=int, help="items per setting of the 'full' run (default all 167; dry runs 4)")
    g.add_argument(
        "--tokens", type=int, help="max_new_tokens for the full and sweep runs instead of the tasks' 5 / 500 (dry runs only: labelled)"
    )
    g.add_argument("--inv-limit", type=int, help="items per setting compared at batch 1 (default 32)")
    g.add_argument("--inv-tokens", type=int, help="new tokens of the batch-1 comparison run (default 24)")
    g.add_argument("--sweep-limit", type=int, help="items per setting of each other sweep point (default: its batch size, at least 2)")
    g.add_argument("--phase-tokens", type=int, help="new tokens of the prefill/decode measurement (default 33)")
    g.add_argument(
        "--model-args-variants",
        help="';'-separated lmms-eval --model_args settings to try (default "
        "attn_implementation=sdpa;attn_implementation=flash_attention_2;attn_implementation=eager;use_cache=False)",
    )
    g.add_argument("--model-args-limit", type=int, help="items per setting of the model_args runs (default 16)")
    g.add_argument("--model-args-tokens", type=int, help="new tokens of the model_args runs (default 16)")
    g.add_argument("--class-models", help="other lmms-eval classes to batch with tiny models (default qwen2_vl,llava_hf)")
    g.add_argument("--class-batch", type=int, help="their batch size (default 4)")
    g.add_argument("--class-limit", type=int, help="their items per setting (default 8)")
    g.add_argument("--class-tokens", type=int, help="their new tokens (default 8)")
    g.add_argument(
        "--budget-s",
        type=float,
        help="skip a stage that would end later than this many seconds after the check began (default 560 on cuda, none on cpu; 0: none)",
    )
    a = p.parse_args(argv)
    out = Path(a.out).resolve()
    work = Path(a.work).resolve() if a.work else out / "work"
    work.mkdir(parents=True, exist_ok=True)
    open_log(out / "gpu_check.jsonl")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ok = True
    try:
        if a.issue25:
            ok = run_issue25(a, work)
        else:
            device, size = a.device or "cuda", a.big_size or "7b"
            stage_env(device)
            tiny_data, origin = prepare_data(work, (64, 48))
            emit("data", origin=origin, tiny=str(tiny_data))
            if not a.skip_tiny:
                t0 = time.perf_counter()
                ok &= stage_tiny(work, tiny_data, device, a.tiny_limit)
                emit("tiny_done", ok=ok, seconds=round(time.perf_counter() - t0, 1))
            if not a.tiny_only:
                w, h = (int(v) for v in (a.image_size or "896x672").lower().split("x"))
                big_data, _ = prepare_data(work, (w, h))
                t0 = time.perf_counter()
                grad_modes = tuple(m.strip() for m in a.bare_grad_modes.split(",") if m.strip())
                from siuo_dev.gpu_overhead import stage_big

                ok &= stage_big(work, big_data, device, size, a.limit, a.max_new_tokens, a.batch_size, grad_modes, a.repeats)
                emit("big_done", ok=ok, seconds=round(time.perf_counter() - t0, 1))
    except Exception as exc:  # noqa: BLE001 - report, don't lose the log
        emit("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:])
        ok = False
    from siuo_dev.gpu_summary import summary

    summary(_LOG)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
