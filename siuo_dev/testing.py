"""Helpers for tests and benchmarks: a local SIUO data directory with placeholder images.

Lives with the tests (it knows this checkout's layout), not in the package. Benchmarks and scripts
import it as ``siuo_dev.testing`` with the repository root on ``sys.path``.

The release JSON is read from ``SIUO_DATA_DIR`` (when it holds the two files) or from the
``shared/siuo`` folder beside the checkout; it is never copied into the repository.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from siuo_task.core.data import FILES, IMAGES_DIR
from siuo_task.judge.host_vars import VARIABLES as JUDGE_VARIABLES  # lmms-eval's judge variables (API_TYPE, MODEL_VERSION, ...)


def offline_env(extra: dict | None = None) -> dict:
    """Environment for a harness or CLI child process: offline, quiet, and without the caller's
    ``SIUO_*`` / ``OPENAI_*`` settings nor lmms-eval's judge variables (so a developer's real key or
    judge never leaks into a test)."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith(("SIUO_", "OPENAI_", "AZURE_")) or k in JUDGE_VARIABLES)}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "WANDB_MODE": "disabled",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def find_release_json() -> Path | None:
    """The folder holding ``siuo_gen.json`` and ``siuo_mcqa.json``, or ``None``."""
    candidates = []
    if os.environ.get("SIUO_DATA_DIR"):
        candidates.append(Path(os.environ["SIUO_DATA_DIR"]))
    repo = Path(__file__).resolve().parents[1]
    candidates += [repo.parent / "shared" / "siuo", repo / "shared" / "siuo"]
    for folder in candidates:
        if all((folder / name).is_file() for name in FILES.values()):
            return folder
    return None


def build_data_dir(dst: Path, src: Path | None = None, size: tuple = (64, 48)) -> Path:
    """Copy the release JSON into ``dst`` and draw one small distinct PNG per item under ``images/``."""
    import json

    from PIL import Image, ImageDraw

    src = src or find_release_json()
    if src is None:
        raise FileNotFoundError("SIUO release JSON not found (set SIUO_DATA_DIR or provide ../shared/siuo)")
    dst = Path(dst)
    (dst / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        shutil.copyfile(src / name, dst / name)
    with open(dst / FILES["gen"], encoding="utf-8") as fh:
        items = json.load(fh)
    for index, item in enumerate(items):
        path = dst / IMAGES_DIR / item["image"]
        if path.exists():
            continue
        img = Image.new("RGB", size, ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256))
        ImageDraw.Draw(img).text((2, 2), str(item["question_id"]), fill=(255, 255, 255))
        img.save(path)
    return dst


def harness_env(extra=None):
    """Environment for a harness subprocess: offline, quiet, no caller SIUO_/OPENAI_ settings."""
    return offline_env(extra)


PYTHON = sys.executable


def score_gen_args(
    submission,
    out,
    data_dir,
    url: str,
    *,
    judge_model: str | None = None,
    cache=None,
    concurrency: int | None = None,
    quiet: bool = False,
    extra: tuple | list = (),
) -> list:
    """``siuo score gen`` arguments (strings) against the judge at ``url``; an option left None is not
    passed, so the command's default (or its variable) applies."""
    args = ["score", "gen", str(submission), "--out", str(out), "--data-dir", str(data_dir), "--judge-base-url", url]
    if judge_model is not None:
        args += ["--judge-model", judge_model]
    if cache is not None:
        args += ["--cache-dir", str(cache)]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    if quiet:
        args.append("--quiet")
    return args + [str(a) for a in extra]


def build_wheel(dst: Path) -> Path:
    """siuo-task's wheel from this checkout, as ``pip install <checkout>`` builds it, built from a
    copy of what the wheel is made of so that the checkout is left as it was (a ``build/`` or an
    egg-info left there would shadow the installed package's metadata)."""
    import subprocess
    import tempfile

    repo = Path(__file__).resolve().parents[1]
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="siuo_wheel_src_") as src:
        src = Path(src)
        shutil.copytree(repo / "siuo_task", src / "siuo_task", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(repo / name, src / name)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dst), str(src)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    return next(dst.glob("siuo_task-*.whl"))
