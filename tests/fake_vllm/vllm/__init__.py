"""A stand-in for the ``vllm`` package: lmms-eval's real ``vllm`` model classes, no engine.

vLLM cannot run on the CPU machines the tests use (and is not installed there). With this folder
first on ``PYTHONPATH``, ``lmms-eval --model vllm`` imports these ``LLM`` and ``SamplingParams``
instead, so the SIUO task runs through lmms-eval's own vLLM classes (``lmms_eval.models.chat.vllm``
and ``lmms_eval.models.simple.vllm``): their request building, image encoding, sampling-parameter
handling and batching are the real code; only ``LLM.chat`` is replaced.

``LLM.chat`` checks each conversation the way vLLM's chat API reads it (roles, ``text`` and
``image_url`` parts, base64 data URLs that decode to images), answers deterministically, and appends
one JSON line per conversation to the file named by ``SIUO_FAKE_VLLM_LOG``: the texts, each image's
size and pixel hash, the order of the parts, and the sampling parameters. The tests compare those
with the SIUO items.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path

__version__ = "0.0.0+siuo-fake"

SAMPLING_KEYS = {
    "n",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
}


class SamplingParams:
    def __init__(self, **kwargs):
        unknown = set(kwargs) - SAMPLING_KEYS
        if unknown:
            raise TypeError(f"SamplingParams got unexpected keyword arguments {sorted(unknown)}")
        self.kwargs = dict(kwargs)
        self.max_tokens = kwargs.get("max_tokens", 16)  # vLLM's default
        self.temperature = kwargs.get("temperature", 1.0)
        self.top_p = kwargs.get("top_p", 1.0)

    def as_dict(self) -> dict:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            **{k: v for k, v in self.kwargs.items() if k not in ("max_tokens", "temperature", "top_p")},
        }


class _Completion:
    def __init__(self, text: str):
        self.text = text
        self.token_ids = list(range(len(text.split())))


class _RequestOutput:
    def __init__(self, text: str):
        self.outputs = [_Completion(text)]


class _Metric:
    def __init__(self, name: str, value: float = 0.0, total: float = 0.0, count: int = 1):
        self.name, self.value, self.sum, self.count = name, value, total, count


def image_digest(image) -> dict:
    """Size and sha256 of an image's RGB pixels (what the tests compare with the item's file)."""
    rgb = image.convert("RGB")
    return {"size": list(rgb.size), "sha256": hashlib.sha256(rgb.tobytes()).hexdigest()}


def _decode_data_url(url: str):
    from PIL import Image

    if not url.startswith("data:image/") or ";base64," not in url:
        raise ValueError(f"image_url is not a base64 data URL: {url[:60]!r}")
    payload = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    image = Image.open(io.BytesIO(payload))
    image.load()
    return image


class LLM:
    def __init__(self, model: str, **kwargs):
        if not (Path(model) / "config.json").is_file():
            raise ValueError(f"fake vllm: {model!r} is not a local checkpoint folder (no config.json)")
        self.model = model
        self.init_kwargs = kwargs
        self._tokens = 0
        self._draws = {}

    def chat(self, messages, sampling_params=None, chat_template=None, **kwargs):
        conversations = messages if messages and isinstance(messages[0], list) else [messages]
        if isinstance(sampling_params, list):
            if len(sampling_params) != len(conversations):
                raise ValueError(f"{len(sampling_params)} sampling params for {len(conversations)} conversations")
            params = sampling_params
        else:
            params = [sampling_params or SamplingParams()] * len(conversations)
        outputs = []
        for conversation, param in zip(conversations, params):
            record = self._read(conversation)
            record["sampling"] = param.as_dict()
            record["chat_template"] = chat_template is not None
            # greedy: one answer per input; sampled: a new draw each time the same input comes back
            key = json.dumps([record["texts"], record["images"]])
            draw = self._draws.get(key, 0) if float(record["sampling"]["temperature"] or 0) > 0 else 0
            self._draws[key] = draw + 1
            record["draw"] = draw
            text = self._answer(record)
            record["answer"] = text
            self._tokens += len(text.split())
            log = os.environ.get("SIUO_FAKE_VLLM_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            outputs.append(_RequestOutput(text))
        return outputs

    @staticmethod
    def _read(conversation) -> dict:
        if not isinstance(conversation, list) or not conversation:
            raise ValueError(f"a conversation is a non-empty list of messages, not {type(conversation).__name__}")
        parts, texts, images, roles = [], [], [], []
        for message in conversation:
            role, content = message.get("role"), message.get("content")
            if role not in ("system", "user", "assistant"):
                raise ValueError(f"unknown role {role!r}")
            roles.append(role)
            if isinstance(content, str):
                parts.append("text")
                texts.append(content)
                continue
            for part in content:
                kind = part.get("type")
                if kind == "text":
                    parts.append("text")
                    texts.append(part["text"])
                elif kind == "image_url":
                    url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
                    parts.append("image")
                    images.append(image_digest(_decode_data_url(url)))
                else:
                    raise ValueError(f"unsupported content part type {kind!r}")
        return {"roles": roles, "parts": parts, "texts": texts, "images": images}

    @staticmethod
    def _answer(record: dict) -> str:
        """A fixed answer per input and draw: an option letter for a multiple-choice prompt, else a sentence."""
        digest = hashlib.sha256(json.dumps([record["texts"], record["images"], record["draw"]]).encode()).digest()
        if any("Chocie:" in text for text in record["texts"]):  # the official MCQA template's spelling
            return "ABCD"[digest[0] % 4]
        words = ["I", "cannot", "help", "with", "that", "please", "be", "careful", "here", "is", "some", "advice"]
        return " ".join(words[b % len(words)] for b in digest[:12]) + "."

    def get_metrics(self):
        return [
            _Metric("vllm:generation_tokens", value=self._tokens),
            _Metric("vllm:time_to_first_token_seconds", total=0.0, count=1),
            _Metric("vllm:time_per_output_token_seconds", total=0.0, count=1),
        ]
