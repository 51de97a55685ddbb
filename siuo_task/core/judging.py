"""What scoring needs from a judge: the :class:`Judge` protocol and its requests and replies.

The core declares the seam; :mod:`siuo_task.judge` implements it (``JudgeClient``, over any
OpenAI-compatible endpoint) and re-exports these names. A test or another backend only has to
provide ``run``, ``provenance`` and ``max_error_rate``. Nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

DEFAULT_MAX_ERROR_RATE = 0.05  # judge errors above this share of judge calls make a gen result invalid


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call: ``key`` is the caller's id (unique within one ``run``), the image is attached as it is."""

    key: str
    prompt: str
    image_path: str


@dataclass
class JudgeReply:
    """The judge's answer to one request: ``text`` (NFKC-normalised) or, when the call failed, ``None``
    and a short ``error``; ``cached`` when it came from the judge cache."""

    key: str
    text: str | None
    error: str | None
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class Judge(Protocol):
    """A judge that grades requests: one reply per request, keyed by ``request.key``."""

    @property
    def max_error_rate(self) -> float:
        """Share of judge calls that may fail before a generation result is invalid."""
        ...

    def run(self, requests: Sequence[JudgeRequest], progress: bool = True) -> Mapping[str, JudgeReply]:
        """Judge every request; a failed call is a reply with ``text`` None, never a missing key.
        Raises (a subclass of ``RuntimeError``) when judging must stop as a whole."""
        ...

    def provenance(self) -> dict:
        """What a result records about this judge: model, endpoint host, decoding, usage (never a key)."""
        ...
