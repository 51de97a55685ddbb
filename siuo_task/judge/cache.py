"""The judge's disk cache: the cache key, reply entries (atomic writes) and the image hash index.

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
import re
import threading
import time
from typing import Any

from siuo_task.core.schema import write_bytes_atomic

logger = logging.getLogger("siuo_task.judge")

CACHE_FORMAT = 2  # 1: keyed without endpoint and request shape
SHA_INDEX_NAME = "image_sha256.index"
_SHA_INDEX_FORMAT = 1
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


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


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


class ImageHashes:
    """sha256 of image files, memoised by ``(path, size, mtime_ns, ctime_ns)`` and kept in an index
    file beside the cache (``{"format": 1, "images": {abs path: [size, mtime_ns, ctime_ns, sha]}}``),
    so a new process need not hash every image again. An unreadable index is ignored."""

    def __init__(self, root: str | None):
        self._path = None if root is None else os.path.join(root, SHA_INDEX_NAME)
        self._lock = threading.Lock()
        self._memo: dict[tuple, str] = {}
        self._loaded = False
        self._unsaved: dict[str, list] = {}

    @staticmethod
    def ident(path: str) -> tuple:
        st = os.stat(path)
        return (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def sha256(self, path: str) -> str:
        ident = self.ident(path)
        with self._lock:
            if not self._loaded:
                self._loaded = True
                for image, (size, mtime_ns, ctime_ns, sha) in self._read().items():
                    self._memo.setdefault((image, size, mtime_ns, ctime_ns), sha)
            sha = self._memo.get(ident)
        if sha is not None:
            return sha
        sha = file_sha256(path)
        with self._lock:
            self._memo[ident] = sha
            if self._path is not None:
                self._unsaved[ident[0]] = [*ident[1:], sha]
        return sha

    def _read(self) -> dict[str, list]:
        if self._path is None:
            return {}
        try:
            with open(self._path, "rb") as fh:
                data = json.loads(fh.read())
            images = data["images"] if data.get("format") == _SHA_INDEX_FORMAT else {}
        except FileNotFoundError:
            return {}
        except Exception:
            logger.debug("SIUO judge: unreadable image hash index ignored")
            return {}
        if not isinstance(images, dict):
            return {}
        return {
            image: entry
            for image, entry in images.items()
            if isinstance(entry, list) and len(entry) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) for v in entry[:3])
            and isinstance(entry[3], str) and _SHA256_RE.fullmatch(entry[3])
        }

    def save(self) -> None:
        """Merge this process's new hashes into the index file (atomic; never raises)."""
        with self._lock:
            if not self._unsaved or self._path is None:
                return
            new, self._unsaved = self._unsaved, {}
        images = self._read()
        images.update(new)
        try:
            write_bytes_atomic(self._path, json.dumps({"format": _SHA_INDEX_FORMAT, "images": images}, ensure_ascii=False).encode("utf-8"))
        except OSError as exc:
            logger.debug("SIUO judge: could not write the image hash index (%s)", type(exc).__name__)


def as_count(value: Any) -> int:
    """A non-negative token count from untrusted JSON (anything else counts as 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value <= 0:
        return 0
    return int(value)
