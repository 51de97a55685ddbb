"""Images for the judge: the data URL of an image file (its own bytes and real MIME type, sniffed
from the bytes), a small LRU of data URLs, the sha256 of image files and its index on disk, and
the tiny generated image of the preflight check call."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import threading
from collections import OrderedDict

from siuo_task.core.schema import write_bytes_atomic

logger = logging.getLogger("siuo_task.judge")

IMAGE_LRU_SIZE = 8  # data URLs kept in memory (consecutive requests mostly share an image)
SHA_INDEX_NAME = "image_sha256.index"
_SHA_INDEX_FORMAT = 1
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def sniff_mime(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM":
        return "image/bmp"
    return None


def mime_with_pil(path: str) -> str:
    try:
        from PIL import Image  # lazy

        with Image.open(path) as im:
            mime = Image.MIME.get((im.format or "").upper())
    except Exception:
        mime = None
    return mime or "application/octet-stream"


def tiny_png() -> bytes:
    """An 8x8 grey PNG: the image of the preflight check call."""
    from PIL import Image  # lazy

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 200, 200)).save(buf, format="PNG")
    return buf.getvalue()


def data_url_of_bytes(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


class DataUrls:
    """``data:<mime>;base64,...`` of image files, the last :data:`IMAGE_LRU_SIZE` kept (thread-safe).
    A file is known by ``(path, size, mtime_ns, ctime_ns)``: a changed file is read again."""

    def __init__(self, size: int = IMAGE_LRU_SIZE):
        self._size = size
        self._lock = threading.Lock()
        self._lru: OrderedDict[tuple, str] = OrderedDict()

    def cached(self, path: str) -> str | None:
        """The data URL when it is in memory (no file read; the common case), else None."""
        ident = ImageHashes.ident(path)
        with self._lock:
            hit = self._lru.get(ident)
            if hit is not None:
                self._lru.move_to_end(ident)
            return hit

    def get(self, path: str) -> str:
        """The data URL of ``path``, reading the file on a miss (raises OSError when unreadable)."""
        hit = self.cached(path)
        if hit is not None:
            return hit
        ident = ImageHashes.ident(path)
        with open(path, "rb") as fh:
            data = fh.read()
        url = data_url_of_bytes(data, sniff_mime(data[:16]) or mime_with_pil(path))
        del data
        with self._lock:
            self._lru[ident] = url
            while len(self._lru) > self._size:
                self._lru.popitem(last=False)
        return url


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
            if isinstance(entry, list)
            and len(entry) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) for v in entry[:3])
            and isinstance(entry[3], str)
            and _SHA256_RE.fullmatch(entry[3])
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
