"""The release items results are checked against (``siuo verify``, ``report``, ``compare``): the
``--data-dir`` given, else ``SIUO_DATA_DIR``, else the pinned revision when it is already in the
local Hugging Face cache. Never downloaded: without any of them the pinned facts (ids, categories,
the SHA-256 of the MCQA answer key) are used, and what they cannot check is said."""

from __future__ import annotations

import os

from siuo_task.core import data


class ReleaseItems:
    """The validated items per setting (``None`` when no data is at hand), loaded once.
    ``search=False``: only ``data_dir`` (none: the pinned facts alone)."""

    def __init__(self, data_dir: str | None = None, *, search: bool = True):
        self.data_dir, self.origin = (str(data_dir), "--data-dir") if data_dir else (None, None)
        if self.data_dir is None and search and os.environ.get(data.ENV_DATA_DIR):
            self.data_dir, self.origin = os.environ[data.ENV_DATA_DIR], data.ENV_DATA_DIR
        if self.data_dir is None and search:
            snapshot = data.cached_hub_snapshot()
            if snapshot is not None:
                self.data_dir, self.origin = str(snapshot), f"the Hugging Face cache ({data.HF_REPO} at {data.HF_REVISION[:12]})"
        self._cache: dict = {}

    def get(self, setting: str) -> list | None:
        if self.data_dir is None:
            return None
        if setting not in self._cache:
            self._cache[setting] = data.load_items(setting, self.data_dir, check_images=False)[0]
        return self._cache[setting]

    def describe(self) -> str:
        return f"{self.data_dir} (from {self.origin})" if self.data_dir else "no data (SIUO's pinned ids and answer-key hash)"
