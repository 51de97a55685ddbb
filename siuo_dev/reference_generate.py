"""Bare transformers generation of SIUO items, with no harness in between.

The reference the local-model tests compare lmms-eval's answers with (same item, same weights,
greedy: the answers must match), and the baseline ``scripts/gpu_check.py`` times the harness
against. It follows the Qwen-VL model cards: a chat message with the image and the prompt, the
processor's chat template, ``qwen_vl_utils.process_vision_info``, ``generate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from siuo_task.core import prompts


def siuo_prompt(setting: str, item: dict) -> str:
    """The official prompt of one SIUO item (what the SIUO tasks send with the image)."""
    if setting == "mcqa":
        return prompts.mcqa_prompt(item["question"], item["options"])
    return prompts.gen_prompt(item["question"])


class QwenVLReference:
    """Loads a Qwen2-VL / Qwen2.5-VL checkpoint once and answers (image, prompt) pairs."""

    def __init__(
        self, model_dir, *, device: str = "cpu", dtype: str = "auto", max_pixels: int | None = None, min_pixels: int | None = None
    ):
        import torch
        from transformers import (
            AutoConfig,
            AutoProcessor,
            Qwen2_5_VLForConditionalGeneration,
            Qwen2VLForConditionalGeneration,
        )

        model_dir = str(Path(model_dir))
        model_type = AutoConfig.from_pretrained(model_dir).model_type
        classes = {"qwen2_vl": Qwen2VLForConditionalGeneration, "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration}
        if model_type not in classes:
            raise ValueError(f"{model_dir}: model_type {model_type!r} is not a Qwen-VL checkpoint ({', '.join(classes)})")
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.model = classes[model_type].from_pretrained(model_dir, dtype=torch_dtype, device_map=device).eval()
        pixels = {k: v for k, v in (("max_pixels", max_pixels), ("min_pixels", min_pixels)) if v is not None}
        self.processor = AutoProcessor.from_pretrained(model_dir, **pixels)
        self.device = device

    def generate(
        self,
        images: Sequence,
        texts: Sequence[str],
        *,
        max_new_tokens: int,
        min_new_tokens: int = 0,
        system_prompt: str | None = None,
        image_kwargs: dict | None = None,
        grad_mode: str = "inference",
        stopping_criteria=None,
    ) -> list[str]:
        """Greedy answers for a batch of (image, prompt) pairs, left-padded when batched.

        An image is a PIL image or anything ``qwen_vl_utils`` reads (path, data URL); ``image_kwargs``
        (e.g. ``max_pixels``) go into each image's message part, as some harness classes do.
        ``grad_mode``: ``"inference"`` wraps ``generate`` in ``torch.inference_mode()`` (the model
        cards' loop); ``"no_grad"`` leaves it to ``generate``'s own ``torch.no_grad()``, as lmms-eval's
        Qwen classes do. ``stopping_criteria`` goes to ``generate`` (e.g. one that only records when
        each step ends). Afterwards ``last_new_tokens``, ``last_generate_start`` (``time.perf_counter``)
        and ``last_generate_seconds`` (the ``model.generate`` call alone) describe the batch,
        ``last_input_tokens`` its padded prompt length.
        """
        import contextlib
        import time

        import torch
        from qwen_vl_utils import process_vision_info

        if grad_mode not in ("inference", "no_grad"):
            raise ValueError(f"grad_mode must be 'inference' or 'no_grad', not {grad_mode!r}")
        conversations = []
        for image, text in zip(images, texts):
            messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
            messages.append(
                {"role": "user", "content": [{"type": "image", "image": image, **(image_kwargs or {})}, {"type": "text", "text": text}]}
            )
            conversations.append(messages)
        chat = [self.processor.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in conversations]
        image_inputs, _ = process_vision_info(conversations)
        inputs = self.processor(text=chat, images=image_inputs, padding=True, padding_side="left", return_tensors="pt")
        inputs = inputs.to(self.device)
        self.last_input_tokens = int(inputs["input_ids"].shape[1])
        tok = self.processor.tokenizer
        mode = torch.inference_mode() if grad_mode == "inference" else contextlib.nullcontext()
        on_cuda = str(self.device).startswith("cuda")
        if on_cuda:
            torch.cuda.synchronize()
        start = self.last_generate_start = time.perf_counter()
        extra = {"stopping_criteria": stopping_criteria} if stopping_criteria is not None else {}
        with mode:
            out = self.model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                temperature=None,
                top_p=None,
                top_k=None,
                **extra,
            )
        if on_cuda:
            torch.cuda.synchronize()
        self.last_generate_seconds = time.perf_counter() - start
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        self.last_new_tokens = int(new_tokens.numel())
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def load_image(path):
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")
