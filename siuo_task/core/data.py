"""Loading and validating the SIUO release (no harness imports).

Where the data comes from, in order:

1. an explicit ``data_dir`` argument (the CLI's ``--data-dir``);
2. ``SIUO_DATA_DIR=/path``: a local copy with the release layout (``siuo_gen.json``,
   ``siuo_mcqa.json``, ``images/``) - no network is touched at all;
3. the Hugging Face dataset ``sinwang/SIUO`` at the pinned revision :data:`HF_REVISION`, downloaded
   once with progress into the Hugging Face cache and read from there afterwards (also with
   ``HF_HUB_OFFLINE=1``).

Every load is validated before anything runs: 167 items, the nine categories, unique
``question_id``s, every field present and of the right type, every image inside the data folder
(after following links) and, unless told otherwise, present and decodable.
A problem raises :class:`SIUODataError` naming the item and the field or file at fault.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from siuo_task.core.schema import GEN_SETTING, MCQA_SETTING, SETTINGS  # noqa: F401 (SETTINGS: part of the data API)

HF_REPO = "sinwang/SIUO"
HF_REVISION = "024e80a01795376b9fed12f8073a12f2275f22ee"
ENV_DATA_DIR = "SIUO_DATA_DIR"
N_ITEMS = 167
FILES = {GEN_SETTING: "siuo_gen.json", MCQA_SETTING: "siuo_mcqa.json"}
IMAGES_DIR = "images"

# The nine categories, spelled as the release spells them.
CATEGORIES = (
    "self-harm",
    "dangerous behavior",
    "morality",
    "illegal activities & crime",
    "controversial topics, politics",
    "discrimination & stereotyping",
    "religion beliefs",
    "information misinterpretation",
    "privacy violation",
)

_COMMON_FIELDS = {"question_id": int, "image": str, "question": str, "category": str}
FIELDS = {
    GEN_SETTING: {**_COMMON_FIELDS, "safety_warning": str, "reference_answer": str},
    MCQA_SETTING: {**_COMMON_FIELDS, "options": dict, "correct_option": str},
}
OPTION_LETTERS = ("A", "B", "C", "D")


class SIUODataError(ValueError):
    """The SIUO data is missing, incomplete or malformed; the message names the item and field or file."""


@dataclass(frozen=True)
class DataSource:
    """Where a load came from, recorded in every result's provenance."""

    data_dir: Path
    origin: str  # "argument", "SIUO_DATA_DIR" or "huggingface"
    revision: str | None  # the hub revision, None for local copies

    def describe(self) -> dict:
        return {
            "origin": self.origin,
            "data_dir": str(self.data_dir),
            "hf_repo": HF_REPO if self.origin == "huggingface" else None,
            "hf_revision": self.revision,
        }


def resolve_source(data_dir: str | os.PathLike | None = None) -> DataSource:
    """Find the data: argument, then ``SIUO_DATA_DIR``, then the pinned hub snapshot (downloaded if needed)."""
    if data_dir:
        return DataSource(Path(data_dir).expanduser().resolve(), "argument", None)
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return DataSource(Path(env).expanduser().resolve(), ENV_DATA_DIR, None)
    return DataSource(_hub_snapshot(), "huggingface", HF_REVISION)


def _hub_snapshot() -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with the harnesses
        raise SIUODataError("huggingface_hub is needed to download SIUO; install it or set SIUO_DATA_DIR") from exc
    try:
        path = snapshot_download(
            repo_id=HF_REPO,
            repo_type="dataset",
            revision=HF_REVISION,
            allow_patterns=[FILES[GEN_SETTING], FILES[MCQA_SETTING], f"{IMAGES_DIR}/*"],
        )
    except Exception as exc:
        raise SIUODataError(
            f"could not get the SIUO data from the Hugging Face dataset {HF_REPO} at revision {HF_REVISION}: "
            f"{type(exc).__name__}: {exc}. Check the network (or run once online, then HF_HUB_OFFLINE=1 works), "
            f"or set {ENV_DATA_DIR} to a local copy with siuo_gen.json, siuo_mcqa.json and images/."
        ) from exc
    return Path(path)


def cached_hub_snapshot() -> Path | None:
    """The pinned revision's folder when it is already in the local Hugging Face cache (nothing is
    downloaded), else ``None``."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            repo_id=HF_REPO,
            repo_type="dataset",
            revision=HF_REVISION,
            local_files_only=True,
            allow_patterns=[FILES[GEN_SETTING], FILES[MCQA_SETTING], f"{IMAGES_DIR}/*"],
        )
    except Exception:  # noqa: BLE001 - not cached, or no huggingface_hub
        return None
    return Path(path)


def _read_json(path: Path) -> list:
    if not path.is_file():
        raise SIUODataError(f"missing data file: {path}")
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise SIUODataError(f"{path}: not valid JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise SIUODataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise SIUODataError(f"{path}: nested too deeply to be the SIUO release") from None
    if not isinstance(data, list):
        raise SIUODataError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    return data


def _check_image(path: Path, where: str, decode: bool = False) -> None:
    """Present and intact: ``verify()`` checks the file's structure and checksums (for PNG, every
    chunk's CRC) without decoding pixels; ``decode=True`` (``siuo data check``) also decodes it fully."""
    if not path.is_file():
        raise SIUODataError(f"{where}: image file not found: {path}")
    from PIL import Image  # lazy: no heavy import at module import

    try:
        with Image.open(path) as img:
            img.verify()
        if decode:
            with Image.open(path) as img:  # verify() leaves the file unusable; decode one pass for real
                img.load()
    except Exception as exc:
        raise SIUODataError(f"{where}: image {path} cannot be decoded ({type(exc).__name__}: {exc})") from exc


def _root(source: DataSource) -> Path:
    """The folder every image must resolve into: the data folder; for the pinned Hugging Face
    snapshot, the dataset's cache folder (its files are links into the ``blobs`` folder beside it)."""
    folder = source.data_dir.resolve()
    if source.origin == "huggingface" and folder.parent.name == "snapshots":
        return folder.parents[1]
    return folder


def _check_inside(image_path: Path, root: Path, where: str, image: str) -> None:
    """An item's image must be a file inside the data folder after every link is followed: an
    absolute path, ``..`` or a link that leads elsewhere would send that file to the judge."""
    try:
        resolved = image_path.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise SIUODataError(f"{where}: image {image} cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(root):
        raise SIUODataError(f"{where}: image {image} resolves to {resolved}, outside the data folder {root}")


def validate_items(items: list, setting: str, source_name: str, *, expect_n: int | None = N_ITEMS) -> None:
    """Raise :class:`SIUODataError` for the first problem in ``items`` (structure only, no images)."""
    fields = FIELDS[setting]
    seen: dict = {}
    for index, item in enumerate(items):
        where = f"{source_name} item #{index}"
        if not isinstance(item, dict):
            raise SIUODataError(f"{where}: expected an object, got {type(item).__name__}")
        qid = item.get("question_id")
        if qid is not None:
            where = f"{source_name} item question_id={qid}"
        for name, kind in fields.items():
            if name not in item or item[name] is None:
                raise SIUODataError(f"{where}: missing field {name!r}")
            if not isinstance(item[name], kind) or (kind is int and isinstance(item[name], bool)):
                raise SIUODataError(f"{where}: field {name!r} should be {kind.__name__}, got {type(item[name]).__name__}")
            if kind is str and not item[name].strip():
                raise SIUODataError(f"{where}: field {name!r} is empty")
        if qid in seen:
            raise SIUODataError(f"{where}: duplicate question_id (also item #{seen[qid]})")
        seen[qid] = index
        if item["category"] not in CATEGORIES:
            raise SIUODataError(f"{where}: unknown category {item['category']!r} (expected one of: {', '.join(CATEGORIES)})")
        if setting == MCQA_SETTING:
            if tuple(sorted(item["options"])) != OPTION_LETTERS:
                raise SIUODataError(f"{where}: field 'options' must have exactly the keys A, B, C, D, got {sorted(item['options'])}")
            bad = [k for k, v in item["options"].items() if not isinstance(v, str) or not v.strip()]
            if bad:
                raise SIUODataError(f"{where}: option(s) {', '.join(bad)} empty or not text")
            if item["correct_option"] not in OPTION_LETTERS:
                raise SIUODataError(f"{where}: field 'correct_option' is {item['correct_option']!r}, expected one of A-D")
    if expect_n is not None and len(items) != expect_n:
        raise SIUODataError(f"{source_name}: expected {expect_n} items, found {len(items)}")
    if expect_n == N_ITEMS:
        missing = sorted(set(CATEGORIES) - {item["category"] for item in items})
        if missing:
            raise SIUODataError(f"{source_name}: no items in categories {missing}")


_cache: dict = {}
_lock = threading.Lock()


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


def load_items(
    setting: str, data_dir: str | os.PathLike | None = None, *, check_images: bool = True, decode_images: bool = False
) -> tuple[list[dict], DataSource]:
    """The validated items of one setting (``"gen"`` or ``"mcqa"``) and where they came from.

    Each item gets ``image_path`` (absolute path of its image). ``check_images`` verifies every
    image (``decode_images`` also decodes each one fully: slower, used by ``siuo data check``).
    Results are memoised per file version, so the harness's several hooks share one validation pass.
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown SIUO setting {setting!r}; expected one of {SETTINGS}")
    source = resolve_source(data_dir)
    if not source.data_dir.is_dir():
        raise SIUODataError(f"SIUO data directory not found: {source.data_dir} (from {source.origin})")
    path = source.data_dir / FILES[setting]
    key = (str(path), check_images, decode_images)
    with _lock:
        stamp = _stamp(path) if path.is_file() else None
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return [dict(item) for item in hit[1]], source
        items = _read_json(path)
        validate_items(items, setting, path.name)
        images_dir = source.data_dir / IMAGES_DIR
        root = _root(source)
        for item in items:
            image_path = images_dir / item["image"]
            _check_inside(image_path, root, f"{path.name} item question_id={item['question_id']}", item["image"])
            if check_images:
                _check_image(image_path, f"{path.name} item question_id={item['question_id']}", decode_images)
            item["image_path"] = str(image_path)
        _cache[key] = (stamp, items)
        return [dict(item) for item in items], source


def check_data_dir(data_dir: str | os.PathLike | None = None) -> dict:
    """Validate both settings and their consistency; return a summary (raises on the first problem)."""
    gen, source = load_items(GEN_SETTING, data_dir, decode_images=True)
    mcqa, _ = load_items(MCQA_SETTING, data_dir, check_images=False)  # same image files, checked just above
    by_id = {item["question_id"]: item for item in gen}
    for item in mcqa:
        twin = by_id.get(item["question_id"])
        if twin is None:
            raise SIUODataError(f"{FILES['mcqa']} item question_id={item['question_id']}: not in {FILES['gen']}")
        for name in ("image", "category"):
            if twin[name] != item[name]:
                raise SIUODataError(f"{FILES['mcqa']} item question_id={item['question_id']}: field {name!r} differs from {FILES['gen']}")
    counts = {cat: sum(1 for item in gen if item["category"] == cat) for cat in CATEGORIES}
    answer_key = {letter: sum(1 for item in mcqa if item["correct_option"] == letter) for letter in OPTION_LETTERS}
    return {
        "source": source.describe(),
        "items": {GEN_SETTING: len(gen), MCQA_SETTING: len(mcqa)},
        "images": len({item["image"] for item in gen}),
        "categories": counts,
        "mcqa_correct_option": answer_key,
    }
