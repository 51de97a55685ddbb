"""The checkpoints the GPU check's batch-size stages run: the Qwen2.5-VL-shaped model with random
bf16 weights (7B or tiny), built once per work folder, and the tiny checkpoints of the other
lmms-eval classes the ``classes`` stage batches (:data:`CLASS_MODELS`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from siuo_dev.gpu_events import emit

TINY_PIXELS = "max_pixels=12544,min_pixels=3136"


def _left_padded_qwen2_vl(dst: Path) -> Path:
    """The tiny Qwen2-VL with ``padding_side: left`` in its tokenizer config: lmms-eval's ``qwen2_vl``
    class passes no padding side, so the checkpoint's tokenizer decides how batches are padded."""
    from siuo_dev.tiny_models import build_tiny_qwen2_vl

    dst = build_tiny_qwen2_vl(dst)
    config_path = dst / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config_path.write_text(json.dumps({**config, "padding_side": "left"}), encoding="utf-8")
    return dst


def _tiny_builder(name: str):
    def build(dst: Path) -> Path:
        from siuo_dev import tiny_models

        return {"qwen2_vl": tiny_models.build_tiny_qwen2_vl, "llava_hf": tiny_models.build_tiny_llava}[name](dst)

    return build


# name -> (lmms-eval model, tiny checkpoint builder, extra --model_args)
CLASS_MODELS = {
    "qwen2_vl": ("qwen2_vl", _tiny_builder("qwen2_vl"), TINY_PIXELS),
    "qwen2_vl_left_padded": ("qwen2_vl", _left_padded_qwen2_vl, TINY_PIXELS),
    "llava_hf": ("llava_hf", _tiny_builder("llava_hf"), ""),
}


def ensure_big_model(work: Path, size: str, device: str) -> Path:
    """The Qwen2.5-VL checkpoint (``size`` 7b or tiny, random bf16), built once per work folder: a
    second check on the same machine reuses it (``big_build`` says ``reused``)."""
    import hashlib

    from siuo_dev import tiny_models
    from siuo_dev.lmms_eval_runs import QWEN_CLASS_PIXELS

    model_dir = work / f"qwen2_5_vl_{size}"
    stamp = {
        "size": size,
        "dtype": "bfloat16",
        **QWEN_CLASS_PIXELS,
        "builder": hashlib.sha256(Path(tiny_models.__file__).read_bytes()).hexdigest()[:16],
    }
    marker = model_dir / "siuo_build.json"
    if marker.exists() and json.loads(marker.read_text()) == stamp:
        emit("big_build", size=size, reused=True, path=str(model_dir))
        return model_dir
    marker.unlink(missing_ok=True)
    start = time.perf_counter()
    tiny_models.build_qwen2_5_vl(model_dir, size=size, dtype="bfloat16", device=device, **QWEN_CLASS_PIXELS)
    seconds = time.perf_counter() - start
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    marker.write_text(json.dumps(stamp))
    n_bytes = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    emit(
        "big_build",
        size=size,
        dtype="bfloat16",
        seconds=round(seconds, 1),
        checkpoint_gib=round(n_bytes / 2**30, 2),
        path=str(model_dir),
        reused=False,
    )
    return model_dir
