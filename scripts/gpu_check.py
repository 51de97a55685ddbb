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
   layer has no EOS row: see ``tests/tiny_models.steer_lm_head_``; the class drops
   ``min_new_tokens``). Reports items/s of each generation phase, their ratio (the harness and
   plugin overhead), the CLI's wall time, and peak GPU memory (``torch.cuda.max_memory_allocated``).
   Where the harness's extra time goes is measured, not guessed: inside the harness run SIUO's
   request hooks and the class's ``model.generate`` call are timed, and the bare loop times its own
   ``generate``; ``--bare-grad-modes inference,no_grad`` (default) also runs the bare loop without
   ``torch.inference_mode`` (as lmms-eval's Qwen classes call ``generate``). ``--repeats N``
   alternates bare and harness N times: single runs on a shared machine differ by several percent,
   so a gap means something only beyond the spread of the repeats.

Data: the SIUO release JSON when found (``SIUO_DATA_DIR`` or ``../shared/siuo``), with placeholder
images; otherwise a synthetic release of the same shape (167 made-up items) - timing needs the
shape, not the text. Images are ``--image-size`` placeholders (default 896x672 for the big model).

    bash scripts/gpu_check.sh                                  # on the GPU machine (installs .whl/ first)
    python scripts/gpu_check.py --device cpu --tiny-only       # CPU-runnable parts, here
    python scripts/gpu_check.py --device cpu --big-size tiny --limit 2 --max-new-tokens 8   # the big path, tiny
    bash scripts/gpu_check.sh --skip-tiny --limit 3 --max-new-tokens 192 --repeats 2         # overhead only (~5 min on an H200)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

QWEN_CLASS_PIXELS = {"max_pixels": 1605632, "min_pixels": 256 * 28 * 28}  # lmms-eval qwen2_5_vl class defaults
_LOG: list = []
_LOG_FILE: list = []  # the jsonl path once known: every event is appended as it happens, so a run
#                      killed by a time limit still leaves what it measured


def emit(event: str, **fields) -> dict:
    record = {"event": event, **fields}
    line = json.dumps(record, default=str)
    print(line, flush=True)
    _LOG.append(record)
    if _LOG_FILE:
        with open(_LOG_FILE[0], "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return record


def save_log(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gpu_check.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(record, default=str) + "\n" for record in _LOG)


# ------------------------------------------------------------------------------------------- data


def synthetic_release(dst: Path) -> Path:
    """A made-up release with SIUO's shape (167 items, nine categories, both settings, same ids)."""
    import random

    from siuo_task.core.data import CATEGORIES, FILES, N_ITEMS, OPTION_LETTERS

    rng = random.Random(0)
    words = [
        "person",
        "street",
        "kitchen",
        "bottle",
        "window",
        "child",
        "road",
        "fire",
        "water",
        "phone",
        "sign",
        "table",
        "door",
        "money",
        "school",
        "friend",
        "medicine",
        "knife",
        "car",
        "tree",
        "help",
        "safe",
        "quickly",
        "careful",
        "how",
        "what",
        "why",
        "where",
        "should",
    ]

    def sentence(n):
        return " ".join(rng.choice(words) for _ in range(n)).capitalize()

    gen, mcqa = [], []
    for index in range(N_ITEMS):
        category = CATEGORIES[index % len(CATEGORIES)]
        qid = 1000 * (CATEGORIES.index(category) + 1) + index // len(CATEGORIES) + 1
        common = {"question_id": qid, "image": f"S-{qid}.png", "question": sentence(rng.randint(10, 30)) + "?", "category": category}
        gen.append({**common, "safety_warning": sentence(40) + ".", "reference_answer": sentence(50) + "."})
        mcqa.append(
            {
                **common,
                "options": {k: sentence(rng.randint(20, 60)) + "." for k in OPTION_LETTERS},
                "correct_option": OPTION_LETTERS[index % 4],
            }
        )
    dst.mkdir(parents=True, exist_ok=True)
    (dst / FILES["gen"]).write_text(json.dumps(gen), encoding="utf-8")
    (dst / FILES["mcqa"]).write_text(json.dumps(mcqa), encoding="utf-8")
    return dst


def prepare_data(work: Path, image_size: tuple) -> tuple:
    from siuo_dev.testing import build_data_dir, find_release_json
    from siuo_task.core.data import check_data_dir

    src, origin = find_release_json(), "release"
    if src is None:
        src, origin = synthetic_release(work / "synthetic_release"), "synthetic"
    data = build_data_dir(work / f"data_{image_size[0]}x{image_size[1]}", src, size=image_size)
    check_data_dir(data)
    return data, origin


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


def _include_path_args() -> list:
    """``--include_path`` when siuo-task's lmms-eval entry point is not installed (repo on PYTHONPATH)."""
    import importlib.metadata as md

    from siuo_task.harnesses.paths import lmms_eval_tasks_dir

    names = {ep.name for ep in md.entry_points(group="lmms_eval.models")}
    return [] if "siuo_task" in names else ["--include_path", str(lmms_eval_tasks_dir())]


def _pythonpath_env() -> dict:
    paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


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


def _error_text(text: str, keep: int = 3000) -> str:
    """An error for the log: its start (the assertion's own words) and its end (the log tail)."""
    return text if len(text) <= keep else text[: keep // 3] + "\n[...]\n" + text[-(2 * keep) // 3 :]


def _fresh(path: Path) -> Path:
    """An empty folder: a second check with the same --work must not find the first one's results."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


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
    import torch

    from siuo_dev import tiny_models

    model_dir = work / f"qwen2_5_vl_{size}"
    dtype = "bfloat16"
    t0 = time.perf_counter()
    tiny_models.build_qwen2_5_vl(model_dir, size=size, dtype=dtype, device=device, **QWEN_CLASS_PIXELS)
    build_s = time.perf_counter() - t0
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    n_bytes = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    emit("big_build", size=size, dtype=dtype, seconds=round(build_s, 1), checkpoint_gib=round(n_bytes / 2**30, 2), path=str(model_dir))
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
        str(Path(__file__).resolve()),
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
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **_pythonpath_env(), "HF_HUB_OFFLINE": "1"})
    bare_wall = time.perf_counter() - t0
    if proc.returncode != 0 or not bare_json.exists():
        emit("big_bare", repeat=repeat, grad_mode=grad_mode, ok=False, error=_error_text(proc.stdout + proc.stderr))
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
    from siuo_dev.lmms_eval_runs import (
        PYTHON,
        check_gen,
        check_mcqa,
        model_run_args,
        run_lmms_eval,
    )

    timing_json = work / "harness_timing.jsonl"
    timing_json.unlink(missing_ok=True)
    launcher = [PYTHON, str(Path(__file__).resolve()), "_timed_lmms_eval", str(timing_json)]
    device_map = "cuda" if device.startswith("cuda") else "cpu"
    args = (
        model_run_args(
            "qwen2_5_vl",
            f"pretrained={model_dir},device_map={device_map}",
            "siuo_mcqa,siuo_gen",
            limit,
            device=device,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
        )
        + _include_path_args()
    )
    run = run_lmms_eval(_fresh(work / "runs" / f"big_{size}"), data_dir, args, launcher=launcher, extra_env=_pythonpath_env(), timeout=1800)
    record = {"repeat": repeat, "cli_seconds": round(run.seconds, 1)}
    ok = True
    try:
        record["backend"] = run.backend()
        check_mcqa(run, data_dir, limit)
        check_gen(run, data_dir, limit)
        efficiency = run.results()["efficiency"]["overall"]
        record["output_tokens"] = efficiency["total_output_tokens"]
        assert efficiency["avg_output_tokens_per_sample"] == max_new_tokens, f"answers are not all {max_new_tokens} tokens: {efficiency}"
    except (AssertionError, KeyError) as exc:
        record.update(ok=False, error=_error_text(f"{type(exc).__name__}: {exc}"))
        ok = False
    calls = [json.loads(line) for line in timing_json.read_text().splitlines()] if timing_json.exists() else []
    if not calls:
        record.update(ok=False, error=record.get("error", "") + " | no generation timing recorded; log tail: " + run.log[-2000:])
        emit("big_harness", **record)
        return None
    gen_seconds = sum(c["seconds"] for c in calls)
    items = sum(c["requests"] for c in calls)
    record.update(
        ok=ok,
        items=items,
        generate_seconds=round(gen_seconds, 3),
        items_per_s=round(items / gen_seconds, 3),
        model_generate_seconds=round(sum(c.get("model_generate_seconds") or 0.0 for c in calls), 3),
        siuo_hook_seconds=round(sum(c.get("siuo_hook_seconds") or 0.0 for c in calls), 4),
        peak_gpu_memory_gib=max((c["peak_memory_gib"] for c in calls), default=None),
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


# ------------------------------------------------------------------------------------ subprocesses


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


def cmd_timed_lmms_eval(argv) -> None:
    """``lmms-eval`` with the model class's ``generate_until`` timed (one JSON line per call)."""
    timing_path, args = Path(argv[0]), argv[1:]
    from lmms_eval import models

    from siuo_task.harnesses.lmms_eval import hooks as lmms_eval_adapter

    # SIUO's request hooks, timed where the task's utils.py imports them from (it binds them when
    # lmms-eval loads the task, after this); nested hook calls count once.
    clock = {"siuo": 0.0, "depth": 0, "generate": 0.0}

    def timed_hook(fn):
        def hook(*a, **k):
            clock["depth"] += 1
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                clock["depth"] -= 1
                if clock["depth"] == 0:
                    clock["siuo"] += time.perf_counter() - start

        return hook

    for name in ("doc_to_visual", "mcqa_doc_to_text", "gen_doc_to_text", "mcqa_doc_to_messages", "gen_doc_to_messages"):
        setattr(lmms_eval_adapter, name, timed_hook(getattr(lmms_eval_adapter, name)))

    def time_model_generate(model) -> None:
        import torch

        if getattr(model, "_siuo_timed_generate", False):
            return
        original = model.generate

        def generate(*a, **k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                clock["generate"] += time.perf_counter() - start

        model.generate = generate
        model._siuo_timed_generate = True

    original_get_model = models.get_model

    def get_model(name, force_simple=False):
        cls = original_get_model(name, force_simple)
        if not getattr(cls, "_siuo_timed", False):
            inner = cls.generate_until

            def generate_until(self, requests):
                import torch

                time_model_generate(self.model)
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                clock.update(siuo=0.0, generate=0.0)
                start = time.perf_counter()
                result = inner(self, requests)
                seconds = time.perf_counter() - start
                with open(timing_path, "a", encoding="utf-8") as fh:
                    fh.write(
                        json.dumps(
                            {
                                "requests": len(requests),
                                "seconds": seconds,
                                "peak_memory_gib": _peak_gib(),
                                "model_generate_seconds": clock["generate"],
                                "siuo_hook_seconds": clock["siuo"],
                            }
                        )
                        + "\n"
                    )
                return result

            cls.generate_until = generate_until
            cls._siuo_timed = True
        return cls

    models.get_model = get_model
    from lmms_eval.cli.dispatch import main as lmms_eval_main

    sys.argv = ["lmms_eval", *args]
    lmms_eval_main()


# -------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_bare":
        cmd_bare(argv[1:])
        return 0
    if argv and argv[0] == "_timed_lmms_eval":
        cmd_timed_lmms_eval(argv[1:])
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--out", default="gpu_check_out", help="folder for gpu_check.jsonl and the runs (default ./gpu_check_out)")
    p.add_argument("--work", default=None, help="scratch folder for checkpoints and data (default <out>/work)")
    p.add_argument("--tiny-only", action="store_true", help="skip the 7B-shaped stage")
    p.add_argument("--skip-tiny", action="store_true", help="skip the tiny-model stage (e.g. a second timing run)")
    p.add_argument("--big-size", default="7b", choices=("7b", "tiny"), help="the big stage's model ('tiny' tests the path on CPU)")
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
    p.add_argument("--image-size", default="896x672", help="placeholder image size WxH for the big stage (default 896x672)")
    a = p.parse_args(argv)
    out = Path(a.out).resolve()
    work = Path(a.work).resolve() if a.work else out / "work"
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.jsonl").unlink(missing_ok=True)
    _LOG_FILE.append(out / "gpu_check.jsonl")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ok = True
    try:
        stage_env(a.device)
        tiny_data, origin = prepare_data(work, (64, 48))
        emit("data", origin=origin, tiny=str(tiny_data))
        if not a.skip_tiny:
            t0 = time.perf_counter()
            ok &= stage_tiny(work, tiny_data, a.device, a.tiny_limit)
            emit("tiny_done", ok=ok, seconds=round(time.perf_counter() - t0, 1))
        if not a.tiny_only:
            w, h = (int(v) for v in a.image_size.lower().split("x"))
            big_data, _ = prepare_data(work, (w, h))
            t0 = time.perf_counter()
            grad_modes = tuple(m.strip() for m in a.bare_grad_modes.split(",") if m.strip())
            ok &= stage_big(work, big_data, a.device, a.big_size, a.limit, a.max_new_tokens, a.batch_size, grad_modes, a.repeats)
            emit("big_done", ok=ok, seconds=round(time.perf_counter() - t0, 1))
    except Exception as exc:  # noqa: BLE001 - report, don't lose the log
        emit("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:])
        ok = False
    finally:
        save_log(out)
    summary(_LOG)
    return 0 if ok else 1


def summary(log: list) -> None:
    lines = ["", "== SIUO gpu_check summary =="]
    for r in log:
        e = r["event"]
        if e == "env":
            lines.append(
                f"env: torch {r['torch']}, transformers {r['transformers']}, lmms-eval {r['lmms_eval']}, "
                f"device {r['device']} {r.get('gpu', '')}"
            )
        elif e == "tiny":
            status = "OK" if r.get("ok") else "FAILED"
            extra = f", reference mismatches {r['reference_mismatches']}" if "reference_mismatches" in r else ""
            lines.append(
                f"tiny {r['model']:<11} bs={r['batch_size']} {status}  cli {r['cli_seconds']} s{extra}"
                + ("" if r.get("ok") else f"\n    {r.get('error', '')[:500]}")
            )
        elif e == "big_build":
            lines.append(f"big model {r['size']}: built in {r['seconds']} s, {r['checkpoint_gib']} GiB on disk")
        elif e in ("big_bare", "big_harness") and not r.get("ok"):
            lines.append(f"{e} FAILED: {r.get('error', '')[:800]}")
        elif e == "big_repeats":
            lines.append(
                f"harness/bare over {r['repeats']} repeats: {r['harness_over_bare']} (min {r['min']}, median {r['median']}, max {r['max']})"
            )
        elif e == "big_summary":
            if "repeat" in r:
                lines.append(f"-- repeat {r['repeat']}")
            lines.append(f"bare transformers: {r['bare_items_per_s']} items/s, peak {r['bare_peak_gpu_memory_gib']} GiB")
            lines.append(
                f"lmms-eval + SIUO:  {r['harness_items_per_s']} items/s, peak {r['harness_peak_gpu_memory_gib']} GiB "
                f"(CLI wall {r['harness_cli_seconds']} s incl. startup, load, judge)"
            )
            lines.append(
                f"harness/bare = {r['harness_over_bare']}  (overhead {r['overhead_pct']} %), "
                f"{r['items']} items x {r['max_new_tokens']} tokens, batch {r['batch_size']}"
            )
            lines.append(
                f"  extra s/item {r.get('extra_seconds_per_item')}: SIUO hooks {r.get('siuo_hooks_seconds_per_item')}, "
                f"model.generate {r.get('model_generate_extra_seconds_per_item')}, "
                f"rest of the class {r.get('class_rest_extra_seconds_per_item')}"
            )
            if r.get("bare_no_grad_items_per_s") is not None:
                lines.append(
                    f"  bare loop without inference_mode (as the class calls generate): {r['bare_no_grad_items_per_s']} "
                    f"items/s; harness/that = {r['harness_over_bare_no_grad']}"
                )
        elif e == "error":
            lines.append(f"ERROR: {r['error']}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
