"""Pure arithmetic over what a timed lmms-eval run recorded (``siuo_dev.gpu_timing``): where the
wall time went, which token ids each SIUO item got, how two runs' answers compare, and a full run
extrapolated from a subset (always labelled so). No harness, no model, no I/O besides reading a file.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

N_ITEMS = 167  # per setting; siuo_task.core.data.N_ITEMS (not imported: keep this module importable alone)


def read_timing(path: Path) -> list:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def call_setting(call: dict) -> str:
    """The SIUO setting of one ``generate`` call: ``mcqa``, ``gen``, ``mixed`` or ``unknown``."""
    items = call.get("items")
    if not items:
        return "unknown"
    settings = {setting for setting, _ in items}
    return settings.pop() if len(settings) == 1 else "mixed"


def _r(x, nd=3):
    return None if x is None else round(x, nd)


def time_split(cli_seconds: float, records: list) -> dict:
    """The run's wall time split into model load, task setup (data check, judge preflight),
    generation per setting (each batch from the end of the previous one - request building, the
    class's preprocessing and ``model.generate`` - to the end of its ``generate``), judging (the
    generation tasks' aggregation: judge calls, scoring, the result file), MCQA scoring and the rest
    (interpreter start, imports, lmms-eval's task index, post-processing, writing results).

    Also, per setting: ``model.generate`` time alone, new tokens, tokens/s, batches, peak GPU
    memory; and the SIUO request hooks' own time.
    """
    by_kind = defaultdict(list)
    for r in records:
        by_kind[r["kind"]].append(r)
    calls = sorted(by_kind["generate"], key=lambda c: c["start"])
    generation, model_generate, tokens, batches, rows, peak, budget = (
        defaultdict(float),
        defaultdict(float),
        defaultdict(int),
        defaultdict(int),
        defaultdict(int),
        {},
        {},
    )
    walls = defaultdict(list)  # each batch's wall time, per setting, in order
    first_setting = call_setting(calls[0]) if calls else None  # its first batch carries the one-time warm-up
    tail = 0.0
    for until in sorted(by_kind["generate_until"], key=lambda u: u["start"]):
        previous = until["start"]
        for call in (c for c in calls if until["start"] <= c["start"] <= until["end"]):
            setting = call_setting(call)
            generation[setting] += call["end"] - previous
            walls[setting].append(round(call["end"] - previous, 4))
            model_generate[setting] += call["seconds"]
            tokens[setting] += sum(call.get("new_tokens") or [])
            batches[setting] += 1
            rows[setting] += call.get("rows") or 0
            if call.get("peak_gpu_memory_gib") is not None:
                peak[setting] = max(peak.get(setting, 0.0), call["peak_gpu_memory_gib"])
            if call.get("max_new_tokens") is not None:
                budget[setting] = max(budget.get(setting, 0), call["max_new_tokens"])
            previous = call["end"]
        tail += until["end"] - previous

    def total(kind, **match):
        return sum(r["seconds"] for r in by_kind[kind] if all(r.get(k) == v for k, v in match.items()))

    parts = {
        "model_load_s": total("model_load"),
        "task_setup_s": total("process_docs"),
        **{f"generation_{s}_s": v for s, v in generation.items()},
        "generation_tail_s": tail,
        "judging_s": total("aggregate", setting="gen"),
        "mcqa_scoring_s": total("aggregate", setting="mcqa"),
    }
    parts["rest_s"] = cli_seconds - sum(parts.values())
    load = by_kind["model_load"][0] if by_kind["model_load"] else {}
    return {
        "cli_s": _r(cli_seconds, 2),
        "parts": {k: _r(v, 2) for k, v in parts.items()},
        "shares_pct": {k[:-2]: _r(100 * v / cli_seconds, 1) for k, v in parts.items()} if cli_seconds else {},
        "generation_s": {s: _r(v, 2) for s, v in generation.items()},
        "model_generate_s": {s: _r(v, 2) for s, v in model_generate.items()},
        "outside_model_generate_s": {s: _r(generation[s] - model_generate[s], 3) for s in generation},
        "siuo_hooks_s": _r(sum(u.get("siuo_hook_seconds") or 0.0 for u in by_kind["generate_until"]), 4),
        "new_tokens": dict(tokens),
        "tokens_per_s": {s: _r(tokens[s] / generation[s], 1) if generation[s] else None for s in generation},
        "batches": dict(batches),
        "batch_walls_s": dict(walls),
        "first_batch_setting": first_setting,
        "rows": dict(rows),
        "max_new_tokens": budget,
        "peak_gpu_memory_gib": peak,
        "model_class": load.get("model_class"),
        "attn_implementation": load.get("attn_implementation"),
    }


def ids_by_item(records: list) -> dict | None:
    """``{(setting, question_id): [new token ids]}``, or ``None`` when some batch's rows could not be
    matched to SIUO items (the class called the row hooks otherwise than once per row)."""
    found = {}
    for call in (r for r in records if r["kind"] == "generate"):
        if call.get("items") is None or call.get("ids") is None:
            return None
        for (setting, qid), ids in zip(call["items"], call["ids"], strict=True):
            found[(setting, qid)] = ids
    return found


def budgets(records: list) -> dict:
    """``{setting: max_new_tokens}`` the run's ``generate`` calls were given."""
    found = {}
    for call in (r for r in records if r["kind"] == "generate"):
        setting = call_setting(call)
        for s in {"mcqa", "gen"} if setting == "mixed" else {setting}:
            if call.get("max_new_tokens") is not None:
                found[s] = max(found.get(s, 0), call["max_new_tokens"])
    return found


def first_difference(a: list, b: list, window: int) -> int | None:
    """The first token position (0-based) where ``a`` and ``b`` differ within their first ``window``
    tokens (one ending earlier counts as a difference there); ``None`` when they agree."""
    a, b = list(a[:window]), list(b[:window])
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _stats(values: list) -> dict | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def compare_answers(reference: dict, other: dict, windows: dict, decode: Callable[[list], str], parse: Callable[[str], str | None]) -> dict:
    """Answers of two runs on the same items, per setting: the share token-identical over the first
    ``windows[setting]`` tokens, the first differing position of each differing answer, and for
    MCQA the share of identical decisions (``parse`` of ``decode`` of each answer's first
    ``windows["mcqa"]`` tokens: what the protocol's MCQA run would have answered)."""
    out = {}
    for setting in ("mcqa", "gen"):
        keys = sorted(k for k in reference if k[0] == setting and k in other)
        if not keys:
            continue
        window = windows[setting]
        differing = []
        for key in keys:
            position = first_difference(reference[key], other[key], window)
            if position is not None:
                differing.append({"question_id": key[1], "first_difference": position})
        n = len(keys)
        row = {
            "items": n,
            "window_tokens": window,
            "identical": n - len(differing),
            "identical_share": round((n - len(differing)) / n, 4),
            "first_difference": _stats([d["first_difference"] for d in differing]),
            "differing": differing,
            "missing": sorted(k[1] for k in reference if k[0] == setting and k not in other),
        }
        if setting == "mcqa":
            changes = []
            for key in keys:
                a, b = parse(decode(reference[key][:window])), parse(decode(other[key][:window]))
                if a != b:
                    changes.append({"question_id": key[1], "reference": a, "other": b})
            row.update(
                decisions_identical=n - len(changes), decisions_identical_share=round((n - len(changes)) / n, 4), decision_changes=changes
            )
        out[setting] = row
    return out


def extrapolate(split: dict, batch_size: int, items: dict, n_full: int = N_ITEMS) -> dict:
    """A full run (``n_full`` items per setting) estimated from a measured subset run of ``items``
    per setting at ``batch_size``: generation from the cost of a batch (the decode step hardly
    depends on the batch size) times ``ceil(n_full / batch_size)`` batches - the run's very first
    batch, which carries one-time warm-up, counted once as measured and left out of the per-batch
    cost when there are others; judging and MCQA scoring scaled by items; model load, task setup and
    the rest kept as measured."""
    parts = dict(split["parts"])
    scaled = {}
    all_walls = split.get("batch_walls_s", {})
    # Batches holding both settings (one --gen_kwargs budget for both tasks: dry runs) are scaled as
    # one group of 2 x n_full items.
    groups = {s: (n_full, items.get(s)) for s in ("mcqa", "gen")}
    groups.update({s: (2 * n_full, sum(items.values())) for s in all_walls if s not in groups})
    for setting, (n_target, n_measured) in groups.items():
        walls = list(all_walls.get(setting) or [])
        if not walls or not n_measured:
            continue
        batches = math.ceil(n_target / batch_size)
        if split.get("first_batch_setting") == setting and len(walls) > 1:
            scaled[f"generation_{setting}_s"] = walls[0] + statistics.mean(walls[1:]) * (batches - 1)
        else:
            scaled[f"generation_{setting}_s"] = statistics.mean(walls) * batches
    parts.update(scaled)
    _scale_by_items(parts, items, n_full)
    return _estimate(
        parts,
        f"measured on {items['gen']} items per setting at batch {batch_size}, extrapolated to {n_full}: "
        f"generation = measured cost per batch x ceil({n_full}/{batch_size}) batches (the run's first batch, "
        "with its warm-up, once as measured), judging and MCQA scoring scaled by items, the rest as measured",
    )


def _scale_by_items(parts: dict, counts: dict, n_full: int) -> None:
    """Judging (per generation answer) and MCQA scoring (per MCQA answer) scaled from ``counts`` to ``n_full``."""
    for key, setting in (("judging_s", "gen"), ("mcqa_scoring_s", "mcqa")):
        if counts.get(setting):
            parts[key] = (parts.get(key) or 0.0) * n_full / counts[setting]


def _estimate(parts: dict, basis: str) -> dict:
    """An extrapolated run: its wall time (the sum of its parts), the parts, and how it was estimated."""
    return {
        "extrapolated": True,
        "wall_s": round(sum(v for v in parts.values() if v is not None), 1),
        "parts": {k: _r(v, 1) for k, v in parts.items()},
        "basis": basis,
    }


def extrapolate_tokens(split: dict, step_s: float, target: dict, n_full: int = N_ITEMS) -> dict:
    """A full batch-1 run estimated from a batch-1 run at other token counts (the invariance run):
    per item, the measured mean batch wall (the run's very first batch, with its warm-up, added once,
    not averaged in) plus ``(target - measured new tokens) x step_s``, the batch-1 decode step measured
    apart; times ``n_full`` items. Judging and MCQA scoring scaled by items, the rest as measured."""
    parts = dict(split["parts"])
    walls, rows = split.get("batch_walls_s", {}), split.get("rows", {})
    for setting in ("mcqa", "gen"):
        w = walls.get(setting) or []
        if not w or not rows.get(setting):
            continue
        if rows[setting] != len(w):
            raise ValueError(f"{setting}: {rows[setting]} answers in {len(w)} batches: not a batch-1 run")
        if split.get("first_batch_setting") == setting and len(w) > 1:
            base, warm_up = statistics.mean(w[1:]), w[0] - statistics.mean(w[1:])
        else:
            base, warm_up = statistics.mean(w), 0.0
        measured_tokens = split["new_tokens"][setting] / rows[setting]
        parts[f"generation_{setting}_s"] = (base + (target[setting] - measured_tokens) * step_s) * n_full + warm_up
    _scale_by_items(parts, rows, n_full)
    measured = {s: round(split["new_tokens"][s] / rows[s], 1) for s in ("mcqa", "gen") if rows.get(s)}
    return _estimate(
        parts,
        f"batch 1, extrapolated to {n_full} items per setting from {rows} answers of {measured} new tokens: "
        f"each answer's measured time plus ({target} - its tokens) x the batch-1 decode step ({step_s} s, "
        "measured apart); the run's first batch, with its warm-up, once; judging and MCQA scoring scaled by items",
    )


class Rates:
    """Rough costs for planning a stage against the time budget, updated from what was measured.
    Defaults: a Qwen2.5-VL-7B-shaped model on one H200 (earlier gpu_check runs: ~25 s per CLI run
    besides generation, 45-66 ms per decode step at batch 1 to 64)."""

    def __init__(self, fixed_run_s: float = 30.0, step_s: float = 0.07, prefill_s: float = 0.5):
        self.fixed_run_s, self.step_s, self.prefill_s = fixed_run_s, step_s, prefill_s

    def run(self, batch_size: int, items: int, tokens: dict) -> float:
        """One harness run of ``items`` per setting with ``tokens`` = {setting: max_new_tokens}."""
        chunks = math.ceil(items / batch_size)
        return self.fixed_run_s + sum(chunks * (t * self.step_s + self.prefill_s) for t in tokens.values())

    def learn(self, split: dict, batch_size: int) -> None:
        """Take the fixed cost and the decode step from a measured run."""
        parts = split["parts"]
        generation = sum(v for k, v in parts.items() if k.startswith("generation_") and v)
        self.fixed_run_s = max(1.0, split["cli_s"] - generation - (parts.get("judging_s") or 0.0))
        steps = sum(split["batches"].get(s, 0) * split["max_new_tokens"].get(s, 0) for s in split["batches"])
        model_time = sum(v for v in split["model_generate_s"].values() if v)
        if steps and model_time:
            self.step_s = model_time / steps
