"""``scripts/gpu_check.py`` on CPU: the big-model path with the tiny checkpoint, so the GPU script can't rot.

The script is meant for a GPU session (``bash scripts/gpu_check.sh``); here its timing stage runs end
to end with ``--big-size tiny --device cpu`` and its events are checked for what the README's
benchmark table reads from them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import PYTHON, harness_env

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def test_big_stage_on_cpu_reports_ratio_and_where_the_time_goes(tmp_path, release_dir):
    out = tmp_path / "out"
    # two repeats: the second harness run must not trip over the first one's result files
    args = [
        "--device",
        "cpu",
        "--skip-tiny",
        "--big-size",
        "tiny",
        "--limit",
        "1",
        "--max-new-tokens",
        "4",
        "--image-size",
        "64x48",
        "--repeats",
        "2",
        "--bare-grad-modes",
        "inference,no_grad",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        [PYTHON, str(SCRIPT), *args],
        env=harness_env({"SIUO_DATA_DIR": str(release_dir)}),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    events = [json.loads(line) for line in (out / "gpu_check.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("big_bare") == 4 and kinds.count("big_harness") == 2 and kinds.count("big_summary") == 2
    assert {e["grad_mode"] for e in events if e["event"] == "big_bare"} == {"inference", "no_grad"}
    for summary in (e for e in events if e["event"] == "big_summary"):
        assert summary["items"] == 2 and summary["max_new_tokens"] == 4
        assert summary["harness_over_bare"] > 0 and summary["bare_no_grad_items_per_s"] > 0
        assert (
            summary["siuo_hooks_seconds_per_item"] > 0
        )  # SIUO's request hooks were timed inside the run (how fast: not a test's business)
        extra = summary["extra_seconds_per_item"]
        parts = (
            summary["siuo_hooks_seconds_per_item"]
            + summary["model_generate_extra_seconds_per_item"]
            + summary["class_rest_extra_seconds_per_item"]
        )
        assert abs(extra - parts) < 0.01, summary  # the breakdown adds up
    repeats = next(e for e in events if e["event"] == "big_repeats")
    assert repeats["repeats"] == 2 and len(repeats["harness_over_bare"]) == 2
    assert "SIUO gpu_check summary" in proc.stdout and "harness/bare over 2 repeats" in proc.stdout
