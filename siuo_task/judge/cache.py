"""The judge's disk cache: the cache key and reply entries (atomic writes). The image hash index
kept beside the entries is :class:`siuo_task.judge.images.ImageHashes`.

A cache key holds everything that can change a reply: the endpoint (normalised base URL without
credentials), the model, the request shape and its decoding parameters exactly as sent, the prompt,
the image's sha256 and a format version. Only successful replies are written; a killed run leaves
no half-written entry, so the next run sends only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any

from siuo_task.core.schema import write_bytes_atomic

logger = logging.getLogger("siuo_task.judge")

CACHE_FORMAT = 2  # 1: keyed without endpoint and request shape
MAX_REPLY_BYTES = 64 * 1024  # a judge reply text (UTF-8) longer than this is a judge error, never stored


def cache_key(*, endpoint: str, model: str, shape: str, params: dict, prompt: str, image_sha256: str) -> str:
    """sha256 hex of the canonical JSON of everything that can change a judge reply."""
    canon = json.dumps(
        {
            "format": CACHE_FORMAT,
            "endpoint": endpoint,
            "model": model,
            "request_shape": shape,
            "params": params,
            "prompt": prompt,
            "image_sha256": image_sha256,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class ReplyCache:
    """``<root>/<key[:2]>/<key>.json`` entries; ``root=None`` turns caching off."""

    def __init__(self, root: str | None):
        self.root = root

    def _path(self, key: str) -> str | None:
        return None if self.root is None else os.path.join(self.root, key[:2], key + ".json")

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if path is None:
            return None
        try:
            with open(path, "rb") as fh:
                entry = json.loads(fh.read())
        except FileNotFoundError:
            return None
        except Exception:
            logger.debug("SIUO judge: unreadable cache entry %s treated as a miss", os.path.basename(path))
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or entry.get("cache_key") != key:
            return None
        if len(entry["text"].encode("utf-8")) > MAX_REPLY_BYTES:  # written before the cap: asked again
            return None
        return entry

    def put(self, key: str, entry: dict) -> None:
        path = self._path(key)
        if path is None:
            return
        entry = {"format": CACHE_FORMAT, "cache_key": key, **entry, "created": time.time()}
        try:
            write_bytes_atomic(path, json.dumps(entry, ensure_ascii=False).encode("utf-8"))
        except OSError as exc:
            logger.warning("SIUO judge: could not write a cache entry (%s)", type(exc).__name__)


def as_count(value: Any) -> int:
    """A non-negative token count from untrusted JSON (anything else counts as 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value <= 0:
        return 0
    return int(value)
