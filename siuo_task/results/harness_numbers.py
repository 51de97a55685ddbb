"""A harness's own numbers for a SIUO task, checked against the SIUO result (pure, no harness imports).

lmms-eval's results file holds, per SIUO task and filter (``none``; ``vote3`` for siuo_gen_vote3),
the headline numbers (``safe,vote3``) and, since lmms-eval 0.6, standard errors computed from the
per-item scores the SIUO aggregation writes into its records (:func:`siuo_task.core.scoring.item_score`):
``<metric>_stderr_clt`` = the sample standard deviation (ddof 1) of the scores of the items with a
verdict over sqrt(n), and ``<metric>_stderr_clustered`` clustered by image (one SIUO item per image,
so the same value). ``siuo verify`` checks both like any other number; ``"N/A"`` (fewer than two
items, runs of older versions, lm-eval) is not a number and is not checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from siuo_task.core.scoring import item_score
from siuo_task.results.verify import Mismatch, verify_headline

STDERR_KEYS = ("_stderr_clt", "_stderr_clustered")  # the ones lmms-eval computes from SIUO's per-item scores


def siuo_numbers(task_results: Mapping) -> dict:
    """``{"safe,vote3": 57.1, "safe_stderr_clt,vote3": 3.8, "alias": ...}`` -> ``{"safe": 57.1,
    "safe_stderr_clt": 3.8}``: a SIUO task has one filter, so its name is dropped; numbers only."""
    out = {}
    for key, value in task_results.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[key.partition(",")[0]] = value
    return out


def clt_stderr(result: Mapping, metric: str) -> float | None:
    """lmms-eval's ``<metric>_stderr_clt`` recomputed from the result's per-item records (``None`` below two items)."""
    scores = [s for s in (item_score(item, metric) for item in result.get("items") or []) if s is not None]
    n = len(scores)
    if n < 2:
        return None
    mean = sum(scores) / n
    return math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1) / n)


def verify_harness_numbers(task_results: Mapping, result: Mapping, task: str, *, source: str = "harness results") -> list:
    """Mismatches between the harness's numbers for ``task`` (headline and standard errors, any filter)
    and what the SIUO result and its per-item records give."""
    numbers = siuo_numbers(task_results)
    found = verify_headline(numbers, result, task, source=source)
    for metric in result.get("metrics") or {}:
        expected = None
        for suffix in STDERR_KEYS:
            stored = numbers.get(metric + suffix)
            if stored is None:
                continue
            expected = clt_stderr(result, metric) if expected is None else expected
            if expected is None or not math.isclose(stored, expected, rel_tol=1e-9, abs_tol=1e-9):
                found.append(
                    Mismatch(
                        f"{source}: results.{task}.{metric}{suffix}",
                        stored,
                        expected,
                        "the harness's standard error, from the per-item scores",
                    )
                )
    return found
