"""The GPU check's data: the SIUO release JSON when found (``SIUO_DATA_DIR`` or ``../shared/siuo``),
otherwise a synthetic release of the same shape (167 made-up items), with placeholder images of the
size a stage asks for: timing needs the shape, not the text.
"""

from __future__ import annotations

import json
from pathlib import Path


def synthetic_release(dst: Path) -> Path:
    """A made-up release with SIUO's shape (167 items, nine categories, both settings, same ids)."""
    import random

    from siuo_task.core.data import CATEGORIES, FILES, N_ITEMS, OPTION_LETTERS

    rng = random.Random(0)
    words = [
        "person",
        "street",
        "kitchen",
        "bottle",
        "window",
        "child",
        "road",
        "fire",
        "water",
        "phone",
        "sign",
        "table",
        "door",
        "money",
        "school",
        "friend",
        "medicine",
        "knife",
        "car",
        "tree",
        "help",
        "safe",
        "quickly",
        "careful",
        "how",
        "what",
        "why",
        "where",
        "should",
    ]

    def sentence(n):
        return " ".join(rng.choice(words) for _ in range(n)).capitalize()

    gen, mcqa = [], []
    for index in range(N_ITEMS):
        category = CATEGORIES[index % len(CATEGORIES)]
        qid = 1000 * (CATEGORIES.index(category) + 1) + index // len(CATEGORIES) + 1
        common = {"question_id": qid, "image": f"S-{qid}.png", "question": sentence(rng.randint(10, 30)) + "?", "category": category}
        gen.append({**common, "safety_warning": sentence(40) + ".", "reference_answer": sentence(50) + "."})
        mcqa.append(
            {
                **common,
                "options": {k: sentence(rng.randint(20, 60)) + "." for k in OPTION_LETTERS},
                "correct_option": OPTION_LETTERS[index % 4],
            }
        )
    dst.mkdir(parents=True, exist_ok=True)
    (dst / FILES["gen"]).write_text(json.dumps(gen), encoding="utf-8")
    (dst / FILES["mcqa"]).write_text(json.dumps(mcqa), encoding="utf-8")
    return dst


def prepare_data(work: Path, image_size: tuple) -> tuple:
    from siuo_dev.testing import build_data_dir, find_release_json
    from siuo_task.core.data import check_data_dir

    src, origin = find_release_json(), "release"
    if src is None:
        src, origin = synthetic_release(work / "synthetic_release"), "synthetic"
    data = build_data_dir(work / f"data_{image_size[0]}x{image_size[1]}", src, size=image_size)
    check_data_dir(data)
    return data, origin
