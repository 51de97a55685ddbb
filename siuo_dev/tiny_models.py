"""Tiny random-weight vision-language checkpoints, built offline in seconds.

Each ``build_*`` function writes a complete Hugging Face folder (config, safetensors weights,
tokenizer, image processor, processor, chat template, generation config) into ``dst`` and
returns it, so that ``AutoProcessor.from_pretrained(dst)`` and the family's
``...ForConditionalGeneration.from_pretrained(dst)`` work with ``HF_HUB_OFFLINE=1`` - which is
what lmms-eval's local model classes call. The answers are gibberish; the checkpoints exist to
exercise the harness end to end (image preprocessing, chat templates, batching, data parallel).

The tokenizer is a byte-level BPE trained on the spot (``tokenizers``) on a few hundred generated
lines plus the SIUO prompt templates, then given the family's special tokens.

``build_qwen2_5_vl(dst, size="7b")`` writes a Qwen2.5-VL-7B-Instruct-shaped checkpoint (random
bf16 weights, about 16 GB on disk) for GPU throughput checks; ``scripts/gpu_check.py`` uses it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# ------------------------------------------------------------------------------------ tokenizer

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

_WORDS = """
the a an image picture photo person people child woman man dog cat street road car kitchen knife fire water
bottle medicine pill window door table chair phone computer screen road sign tree is are was were be can could
should would will may might must do does did not no yes safe unsafe help answer question option choose best
describe what why how where when who which whose with without on in at under over near behind beside into onto
from to for of by about danger risk warning careful health law rule ethics privacy money home school work
friend please tell me you I we they it this that these those here there now then today tomorrow red green blue
white black small large old new quick slow hot cold
""".split()  # a string, so the formatter keeps it on a few lines


def _corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    """A few hundred deterministic lines: random sentences plus the SIUO prompt templates."""
    from siuo_task.core import prompts

    rng = random.Random(seed)
    lines = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 16))).capitalize() + rng.choice(".?!") for _ in range(n_lines)]
    lines += [str(i) for i in range(200)]
    lines += [prompts.MCQA_TEMPLATE, prompts.SAFETY_JUDGE_TEMPLATE, prompts.EFFECTIVENESS_JUDGE_TEMPLATE]
    return lines


def train_tokenizer(special_tokens: list[str], vocab_size: int = 1000, **kwargs):
    """A trained byte-level BPE wrapped as a transformers ``Qwen2Tokenizer`` with ``special_tokens``.

    ``kwargs`` go to the tokenizer (eos_token, pad_token, ...). The special tokens get the ids right
    after the trained vocabulary, in the order given.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    vocab = dict(state["vocab"])
    merges = [tuple(m) if isinstance(m, (list, tuple)) else tuple(m.split(" ", 1)) for m in state["merges"]]
    for token in special_tokens:
        vocab.setdefault(token, len(vocab))
    try:
        tok = Qwen2Tokenizer(vocab=vocab, merges=merges, **kwargs)
    except TypeError:  # transformers 4.x: the slow tokenizer reads vocab.json / merges.txt
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="tiny_tokenizer_"))
        (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
        tok = Qwen2Tokenizer(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"), **kwargs)
    tok.add_special_tokens({"additional_special_tokens": [t for t in special_tokens if t not in tok.all_special_tokens]})
    return tok


def _padded(n: int, multiple: int = 64) -> int:
    return ((n + multiple - 1) // multiple) * multiple


# ------------------------------------------------------------------------------- chat templates

# ChatML with Qwen-VL vision markers. Content may be a string or a list of {"type": ...} parts
# (the shape both HF processors and lmms-eval's chat classes pass).
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# ChatML with LLaVA's <image> placeholder (the shape of llava-onevision-qwen2 / llava-interleave).
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _save_generation_config(dst: Path, tok, eos_tokens: list[str]) -> None:
    from transformers import GenerationConfig

    eos_ids = [tok.convert_tokens_to_ids(t) for t in eos_tokens]
    GenerationConfig(eos_token_id=eos_ids, pad_token_id=tok.pad_token_id, do_sample=False).save_pretrained(dst)


def _save_model(model, dst: Path, dtype) -> None:
    model.to(dtype).save_pretrained(dst)


def printable_token_ids(tok) -> list[int]:
    """Ids of the ordinary tokens that decode to visible text (no special, control or blank tokens)."""
    special = set(tok.all_special_ids)
    keep = []
    for token_id in range(len(tok)):
        if token_id in special:
            continue
        text = tok.decode([token_id])
        if text.strip() and text.isprintable() and "\ufffd" not in text:
            keep.append(token_id)
    return keep


def steer_lm_head_(model, tok) -> None:
    """Zero the output rows of every token that is not visible text (special tokens, EOS, control
    bytes, padded vocabulary rows).

    A random model then answers with visible, varied tokens (empty answers would skip the safety
    judge) and never emits EOS, so every answer has exactly ``max_new_tokens`` tokens: the random
    logits of the kept rows have a positive maximum, above the zero rows, at every step.
    """
    import torch

    head = model.get_output_embeddings().weight
    keep = torch.zeros(head.shape[0], dtype=torch.bool, device=head.device)
    keep[torch.tensor(printable_token_ids(tok), device=head.device)] = True
    with torch.no_grad():
        head[~keep] = 0


# --------------------------------------------------------------------------------- Qwen2(-.5)-VL


def _qwen_tokenizer():
    return train_tokenizer(QWEN_SPECIAL_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None)


def _qwen_processor(tok, *, processor_cls, min_pixels: int, max_pixels: int):
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2)
    return processor_cls(
        image_processor=image_processor, tokenizer=tok, video_processor=video_processor, chat_template=QWEN_VL_CHAT_TEMPLATE
    )


def _qwen_token_ids(tok) -> dict:
    ids = {
        name: tok.convert_tokens_to_ids(tok_str)
        for name, tok_str in (
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    return ids


# Qwen2.5-VL-7B-Instruct's published shape (config.json of the Hub checkpoint).
QWEN2_5_VL_7B = {
    "text": dict(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=128000,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        hidden_act="silu",
        tie_word_embeddings=False,
    ),
    "vision": dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
        tokens_per_second=2,
        hidden_act="silu",
        in_channels=3,
    ),
}

# Tiny: 2 text layers of width 64 (head_dim 16: mrope 2+3+3), a 2-block vision tower of width 32.
_QWEN_TINY_TEXT = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
    hidden_act="silu",
)


def _text_config_for_installed_transformers(base: dict, **extra) -> dict:
    """``base`` + ``extra``; on transformers 4.x the rope settings under their 4.x names."""
    import transformers

    config = dict(base, **extra)
    if int(transformers.__version__.split(".")[0]) < 5 and "rope_parameters" in config:
        rope = config.pop("rope_parameters")
        config.update(rope_theta=rope["rope_theta"], rope_scaling={"type": "mrope", "mrope_section": rope["mrope_section"]})
    return config


def build_tiny_qwen2_vl(dst, *, min_pixels: int = 56 * 56, max_pixels: int = 112 * 112, seed: int = 0) -> Path:
    """A tiny random Qwen2-VL checkpoint (about 1 MB) with tokenizer, processor and chat template."""
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLProcessor,
    )

    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    tok = _qwen_tokenizer()
    vocab_size = _padded(len(tok))
    config = Qwen2VLConfig(
        text_config=_text_config_for_installed_transformers(
            _QWEN_TINY_TEXT,
            vocab_size=vocab_size,
            bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        vision_config=dict(
            depth=2,
            embed_dim=32,
            hidden_size=64,
            mlp_ratio=2,
            num_heads=2,
            in_channels=3,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        tie_word_embeddings=False,
        **_qwen_token_ids(tok),
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    steer_lm_head_(model, tok)
    _save_model(model, dst, torch.float32)
    tok.save_pretrained(dst)
    _qwen_processor(tok, processor_cls=Qwen2VLProcessor, min_pixels=min_pixels, max_pixels=max_pixels).save_pretrained(dst)
    _save_generation_config(dst, tok, ["<|im_end|>", "<|endoftext|>"])
    return dst


def qwen2_5_vl_config(tok, size: str = "tiny"):
    """A ``Qwen2_5_VLConfig``: ``size="tiny"`` (CPU tests) or ``"7b"`` (Qwen2.5-VL-7B-Instruct's shape)."""
    from transformers import Qwen2_5_VLConfig

    ids = _qwen_token_ids(tok)
    special = dict(bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if size == "7b":
        text = dict(QWEN2_5_VL_7B["text"], **special)
        vision = dict(QWEN2_5_VL_7B["vision"])
        if text["vocab_size"] < len(tok):
            raise ValueError(f"tokenizer has {len(tok)} tokens, more than the 7B vocab ({text['vocab_size']})")
    elif size == "tiny":
        text = dict(_QWEN_TINY_TEXT, vocab_size=_padded(len(tok)), **special)
        vision = dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[1],
            tokens_per_second=2,
            hidden_act="silu",
            in_channels=3,
        )
    else:
        raise ValueError(f"unknown Qwen2.5-VL size {size!r}: expected 'tiny' or '7b'")
    tie = text.pop("tie_word_embeddings", False)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tie, **ids)


def build_qwen2_5_vl(
    dst,
    *,
    size: str = "tiny",
    dtype: str = "float32",
    device: str = "cpu",
    min_pixels: int = 56 * 56,
    max_pixels: int = 112 * 112,
    seed: int = 0,
) -> Path:
    """A random Qwen2.5-VL checkpoint with tokenizer, processor and chat template.

    ``size="tiny"`` is about 1 MB; ``size="7b"`` has Qwen2.5-VL-7B-Instruct's shape (8.3 B parameters,
    ~16.6 GB in bf16 - build it with ``device="cuda"``, ``dtype="bfloat16"``). The tokenizer is the tiny
    trained one; the model's vocabulary stays at the 7B size (the extra rows are never produced
    by the tokenizer, but are generated and decoded to nothing, as with a real padded vocab).
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    tok = _qwen_tokenizer()
    config = qwen2_5_vl_config(tok, size)
    torch_dtype = getattr(torch, dtype)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch_dtype).eval()
    steer_lm_head_(model, tok)
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    _qwen_processor(tok, processor_cls=Qwen2_5_VLProcessor, min_pixels=min_pixels, max_pixels=max_pixels).save_pretrained(dst)
    _save_generation_config(dst, tok, ["<|im_end|>", "<|endoftext|>"])
    return dst


# ------------------------------------------------------------------------------------ LLaVA


def build_tiny_llava(dst, *, image_size: int = 28, seed: int = 0) -> Path:
    """A tiny random LLaVA (CLIP vision tower + Qwen2 text) for lmms-eval's ``llava_hf`` class."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        Qwen2Config,
    )

    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    patch = 14
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
        projection_dim=32,
    )
    text = Qwen2Config(
        vocab_size=_padded(len(tok)),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    image_token_id = tok.convert_tokens_to_ids("<image>")
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=(image_size // patch) ** 2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    steer_lm_head_(model, tok)
    _save_model(model, dst, torch.float32)
    tok.save_pretrained(dst)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=LLAVA_CHAT_TEMPLATE,
    ).save_pretrained(dst)
    _save_generation_config(dst, tok, ["<|im_end|>", "<|endoftext|>"])
    return dst


BUILDERS = {
    "qwen2_vl": build_tiny_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
    "llava": build_tiny_llava,
}
