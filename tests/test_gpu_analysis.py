"""The GPU check's batch-size arithmetic and instrumentation, without a harness run (fast tier).

``siuo_dev.gpu_analysis`` (time split, token-id comparison, extrapolation), ``siuo_dev.gpu_timing``
(the wrappers the timed lmms-eval process puts around SIUO's hooks and the model), the time budget
and the summary's labels. The end-to-end runs of every stage are in ``test_gpu_check_script.py``.
"""

from __future__ import annotations

import json
import types

import pytest

from siuo_dev import gpu_analysis, gpu_events, gpu_timing
from siuo_dev.gpu_analysis import compare_answers, extrapolate, first_difference, time_split
from siuo_task.core.mcqa import parse_official


def _call(start, end, setting, n_rows=2, tokens=4, seconds=None, qids=None, peak=None, budget=4):
    qids = qids or list(range(n_rows))
    return {
        "kind": "generate",
        "start": start,
        "end": end,
        "seconds": seconds if seconds is not None else end - start,
        "rows": n_rows,
        "new_tokens": [tokens] * n_rows,
        "ids": [[7] * tokens for _ in range(n_rows)],
        "items": [[setting, q] for q in qids],
        "peak_gpu_memory_gib": peak,
        "max_new_tokens": budget,
    }


def _records():
    # process 0..100: model load 10-20, task setup 20-23, generate_until 30-70 with four batches
    # (mcqa 30-35 [model 2 s], mcqa 35-38, gen 38-58 [model 15 s], gen 58-69), judging 75-85,
    # MCQA scoring 85-85.5
    return [
        {"kind": "process_start", "t": 0.0},
        {"kind": "model_load", "start": 10.0, "end": 20.0, "seconds": 10.0, "model_class": "m.C", "attn_implementation": "sdpa"},
        {"kind": "process_docs", "start": 20.0, "end": 21.0, "seconds": 1.0, "hook": "mcqa_process_docs"},
        {"kind": "process_docs", "start": 21.0, "end": 23.0, "seconds": 2.0, "hook": "gen_process_docs"},
        _call(30.0, 35.0, "mcqa", seconds=2.0, peak=20.0, budget=5),
        _call(35.0, 38.0, "mcqa", peak=21.0, budget=5),
        _call(38.0, 58.0, "gen", seconds=15.0, peak=40.0, tokens=10, budget=500),
        _call(58.0, 69.0, "gen", peak=39.0, tokens=10, budget=500),
        {"kind": "generate_until", "start": 30.0, "end": 70.0, "seconds": 40.0, "requests": 8, "siuo_hook_seconds": 0.4},
        {"kind": "aggregate", "start": 75.0, "end": 85.0, "seconds": 10.0, "setting": "gen", "hook": "aggregate_safe"},
        {"kind": "aggregate", "start": 85.0, "end": 85.5, "seconds": 0.5, "setting": "mcqa", "hook": "aggregate_accuracy"},
    ]


def test_time_split_adds_up_and_splits_generation_by_setting():
    split = time_split(100.0, _records())
    parts = split["parts"]
    assert parts["model_load_s"] == 10.0 and parts["task_setup_s"] == 3.0
    # each batch from the end of the previous one: mcqa 5 + 3, gen 20 + 11, tail 1
    assert parts["generation_mcqa_s"] == 8.0 and parts["generation_gen_s"] == 31.0 and parts["generation_tail_s"] == 1.0
    assert parts["judging_s"] == 10.0 and parts["mcqa_scoring_s"] == 0.5
    assert parts["rest_s"] == pytest.approx(100 - 10 - 3 - 8 - 31 - 1 - 10 - 0.5)
    assert sum(parts.values()) == pytest.approx(100.0)
    assert split["batch_walls_s"] == {"mcqa": [5.0, 3.0], "gen": [20.0, 11.0]} and split["first_batch_setting"] == "mcqa"
    assert split["model_generate_s"] == {"mcqa": 5.0, "gen": 26.0}
    assert split["outside_model_generate_s"]["gen"] == pytest.approx(5.0)
    assert split["new_tokens"] == {"mcqa": 16, "gen": 40} and split["tokens_per_s"]["gen"] == round(40 / 31, 1)
    assert split["peak_gpu_memory_gib"] == {"mcqa": 21.0, "gen": 40.0}
    assert split["max_new_tokens"] == {"mcqa": 5, "gen": 500}
    assert split["siuo_hooks_s"] == 0.4 and split["attn_implementation"] == "sdpa"
    assert split["shares_pct"]["judging"] == 10.0


def test_a_batch_of_both_settings_is_mixed_and_unmatched_rows_unknown():
    mixed = _call(0, 1, "mcqa")
    mixed["items"] = [["mcqa", 1], ["gen", 1]]
    unknown = _call(1, 2, "gen")
    unknown["items"] = None
    assert gpu_analysis.call_setting(mixed) == "mixed" and gpu_analysis.call_setting(unknown) == "unknown"
    assert gpu_analysis.ids_by_item([{"kind": "generate", **unknown}]) is None
    assert gpu_analysis.budgets([mixed]) == {"mcqa": 4, "gen": 4}


def test_ids_by_item_maps_rows_to_items():
    call = _call(0, 1, "gen", qids=[11, 12])
    call["ids"] = [[1, 2], [3]]
    assert gpu_analysis.ids_by_item([call]) == {("gen", 11): [1, 2], ("gen", 12): [3]}


@pytest.mark.parametrize(
    "a, b, window, expected",
    [
        ([1, 2, 3], [1, 2, 3], 3, None),
        ([1, 2, 3], [1, 9, 3], 3, 1),
        ([1, 2, 3, 4], [1, 2, 3, 5], 3, None),  # beyond the window: not compared
        ([1, 2], [1, 2, 3], 3, 2),  # one answer ended (EOS) where the other went on
        ([5], [6], 1, 0),
    ],
)
def test_first_difference(a, b, window, expected):
    assert first_difference(a, b, window) == expected


def test_compare_answers_counts_identical_tokens_and_mcqa_decisions():
    letters = {1: "(A)", 2: "(B)", 3: "junk"}
    decode = lambda ids: " ".join(letters.get(i, "x") for i in ids)  # noqa: E731
    reference = {
        ("mcqa", 1): [1, 4, 4, 4, 4, 9, 9],
        ("mcqa", 2): [2, 4, 4, 4, 4],
        ("mcqa", 3): [3, 4, 4, 4, 4],
        ("gen", 1): [5, 6, 7, 8],
        ("gen", 2): [5, 6, 7, 8],
        ("gen", 3): [1, 1],
    }
    other = {
        ("mcqa", 1): [1, 4, 4, 4, 4, 0, 0],  # differs only after the 5 compared tokens
        ("mcqa", 2): [1, 4, 4, 4, 4],  # decision B -> A
        ("mcqa", 3): [3, 4, 4, 5, 4],  # tokens differ at 3, decision unchanged (unparsed both)
        ("gen", 1): [5, 6, 7, 8],
        ("gen", 2): [5, 6, 0, 8],
    }
    result = compare_answers(reference, other, {"mcqa": 5, "gen": 4}, decode, parse_official)
    mcqa, gen = result["mcqa"], result["gen"]
    assert mcqa["items"] == 3 and mcqa["identical"] == 1 and mcqa["identical_share"] == round(1 / 3, 4)
    assert {d["question_id"]: d["first_difference"] for d in mcqa["differing"]} == {2: 0, 3: 3}
    assert mcqa["decisions_identical"] == 2 and mcqa["decision_changes"] == [{"question_id": 2, "reference": "B", "other": "A"}]
    assert gen["items"] == 2 and gen["identical"] == 1 and gen["differing"] == [{"question_id": 2, "first_difference": 2}]
    assert gen["missing"] == [3] and gen["first_difference"] == {"min": 2, "median": 2, "max": 2}
    assert "decisions_identical" not in gen


def test_extrapolation_scales_batches_keeps_warm_up_once_and_says_so():
    split = time_split(100.0, _records())
    # 2 items per setting at batch 1: 2 batches each; mcqa went first (its first batch carries warm-up)
    estimate = extrapolate(split, 1, {"mcqa": 2, "gen": 2})
    assert estimate["extrapolated"] is True and "extrapolated to 167" in estimate["basis"]
    parts = estimate["parts"]
    assert parts["generation_mcqa_s"] == round(5.0 + 3.0 * 166, 1)
    assert parts["generation_gen_s"] == round((20.0 + 11.0) / 2 * 167, 1)
    assert parts["judging_s"] == round(10.0 * 167 / 2, 1) and parts["mcqa_scoring_s"] == round(0.5 * 167 / 2, 1)
    assert parts["model_load_s"] == 10.0 and parts["rest_s"] == round(split["parts"]["rest_s"], 1)
    assert estimate["wall_s"] == pytest.approx(sum(parts.values()), abs=0.2)
    # at batch 64 the same subset is one batch of each: 3 batches for 167 items
    at_64 = extrapolate(split, 64, {"mcqa": 64, "gen": 64})
    assert at_64["parts"]["generation_gen_s"] == round(15.5 * 3, 1)


def test_batch_one_extrapolated_from_shorter_answers_at_the_decode_step():
    """The invariance run (batch 1, 24 tokens for both settings) lengthened to 5 / 500 tokens."""
    records = [{"kind": "generate_until", "start": 0.0, "end": 20.0, "seconds": 20.0, "requests": 4}]
    walls = [("mcqa", 0, 3.0), ("gen", 3, 2.0), ("mcqa", 5, 2.2), ("gen", 7.2, 2.4)]  # the first carries warm-up
    for i, (setting, start, wall) in enumerate(walls):
        call = _call(start, start + wall, setting, n_rows=1, tokens=24, qids=[i], budget=24)
        records.append(call)
    split = time_split(30.0, records)
    estimate = gpu_analysis.extrapolate_tokens(split, 0.05, {"mcqa": 5, "gen": 500})
    parts = estimate["parts"]
    assert parts["generation_mcqa_s"] == round((2.2 + (5 - 24) * 0.05) * 167 + (3.0 - 2.2), 1)
    assert parts["generation_gen_s"] == round((2.2 + (500 - 24) * 0.05) * 167, 1)
    assert estimate["extrapolated"] is True and "decode step (0.05 s" in estimate["basis"]
    with pytest.raises(ValueError, match="not a batch-1 run"):
        gpu_analysis.extrapolate_tokens(time_split(100.0, _records()), 0.05, {"mcqa": 5, "gen": 500})


def test_rates_plan_a_run_and_learn_from_one():
    rates = gpu_analysis.Rates(fixed_run_s=30, step_s=0.05, prefill_s=1.0)
    assert rates.run(64, 167, {"mcqa": 5, "gen": 500}) == pytest.approx(30 + 3 * (5 * 0.05 + 1) + 3 * (500 * 0.05 + 1))
    rates.learn(time_split(100.0, _records()), 2)
    assert rates.fixed_run_s == pytest.approx(100 - 40 - 10)  # wall - generation (incl. tail) - judging
    assert rates.step_s == pytest.approx(31.0 / (2 * 5 + 2 * 500))


def test_budget_skips_a_stage_that_does_not_fit(tmp_path):
    gpu_events.open_log(tmp_path / "log.jsonl")
    budget = gpu_events.Budget(100, start=__import__("time").time() - 90)
    assert budget.allows(5) and not budget.allows(20)
    assert not budget.skip_unless_fits("sweep_b16", 20)
    skipped = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert skipped["event"] == "skipped" and skipped["stage"] == "sweep_b16" and skipped["estimate_s"] == 20
    assert gpu_events.Budget(0).allows(10**9) and gpu_events.Budget(0).left() is None


# ------------------------------------------------------------------------------ the timed process


def test_trim_ids_and_setting_of():
    assert gpu_timing.trim_ids([4, 5, 2, 0, 0], 2) == [4, 5, 2]
    assert gpu_timing.trim_ids([4, 5], [2, 3]) == [4, 5]
    assert gpu_timing.setting_of({"options": {"A": "x"}}) == "mcqa" and gpu_timing.setting_of({"question": "q"}) == "gen"


def test_recorder_matches_rows_to_items_and_times_the_model(tmp_path):
    torch = pytest.importorskip("torch")
    recorder = gpu_timing.Recorder(tmp_path / "t.jsonl")
    inner = lambda doc: [doc["question_id"]]  # noqa: E731
    visual = recorder.request_hook("doc_to_visual", inner)
    messages = recorder.request_hook("gen_doc_to_messages", lambda doc: visual(doc))  # nested: counted once

    class Model:
        def generate(self, input_ids=None, max_new_tokens=None, eos_token_id=None, **_):
            new = torch.tensor([[5, 6, 2], [7, 2, 0]])[:, :max_new_tokens]
            return torch.cat([input_ids, new], dim=1)

    model = Model()
    recorder.patch_generate(model)
    for qid in (3, 4):
        messages({"question_id": qid, "question": "q"})
    model.generate(input_ids=torch.zeros((2, 6), dtype=torch.long), max_new_tokens=3, eos_token_id=2)
    visual({"question_id": 9, "options": {"A": "a"}})  # one hook call for a batch of two: not matched
    model.generate(input_ids=torch.zeros((2, 6), dtype=torch.long), max_new_tokens=3, eos_token_id=2)
    first, second = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert first["items"] == [["gen", 3], ["gen", 4]] and first["ids"] == [[5, 6, 2], [7, 2]]
    assert first["rows"] == 2 and first["input_tokens"] == 6 and first["new_tokens"] == [3, 2] and first["max_new_tokens"] == 3
    assert second["items"] is None and second["row_hook_calls"] == 1
    assert recorder.hook_seconds > 0


def test_recorder_times_model_load_and_generate_until(tmp_path):
    recorder = gpu_timing.Recorder(tmp_path / "t.jsonl")

    class Cls:
        def __init__(self, pretrained="x"):
            self.model = types.SimpleNamespace(config=types.SimpleNamespace(_attn_implementation="eager"), generate=lambda **k: None)
            self.batch_size_per_gpu = 4

        def generate_until(self, requests):
            return [r.upper() for r in requests]

    recorder.patch_model_class(Cls)
    recorder.patch_model_class(Cls)  # twice: wrapped once
    assert Cls(pretrained="y").generate_until(["a", "b"]) == ["A", "B"]
    kinds = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [k["kind"] for k in kinds] == ["model_load", "generate_until"]
    assert kinds[0]["attn_implementation"] == "eager" and kinds[0]["batch_size"] == 4 and kinds[1]["requests"] == 2


def test_protocol_tokens_are_the_task_yamls():
    from siuo_dev.gpu_runs import protocol_tokens

    assert protocol_tokens() == {"mcqa": 5, "gen": 500}


# ------------------------------------------------------------------------------ settings and summary


def _args(**kw):
    from siuo_dev.gpu_settings import OPTIONS

    base = {name: None for name in OPTIONS}
    base.update(device=None, dry_run=False, big_size=None, image_size=None)
    base.update(kw)
    return types.SimpleNamespace(**base)


def test_settings_defaults_dry_run_and_overrides():
    from siuo_dev.gpu_settings import settings_from_args

    gpu = settings_from_args(_args())
    assert gpu.device == "cuda" and gpu.size == "7b" and gpu.batch == 64 and gpu.full_limit is None and gpu.tokens is None
    assert gpu.budget_s == 560 and gpu.inv_limit >= 32
    dry = settings_from_args(_args(dry_run=True, batch_sizes="1,2", model_args_variants="use_cache=False; attn_implementation=eager"))
    assert dry.device == "cpu" and dry.size == "tiny" and dry.budget_s == 0 and dry.tokens == 8
    assert dry.model_args_variants == ["use_cache=False", "attn_implementation=eager"] and dry.batch_sizes == [1, 2]
    with pytest.raises(SystemExit, match="unknown --stages"):
        settings_from_args(_args(stages="full,speed"))


def test_plan_fits_the_device_call():
    """The default GPU plan, at the planning rates, stays inside the 560 s budget the stages enforce."""
    from siuo_dev.gpu_settings import Settings, estimate_seconds

    estimate = estimate_seconds(Settings(batch_sizes=[1, 64]))
    assert set(estimate) == {"build", "full", "invariance", "phases", "sweep", "model_args", "classes"}
    assert estimate["full"] < estimate["invariance"] + estimate["full"] < 560


def test_summary_labels_subsets_extrapolations_and_skips():
    from siuo_dev.gpu_summary import issue25_lines

    lines = issue25_lines(
        [
            {
                "event": "full_run",
                "measured": True,
                "ok": True,
                "batch_size": 2,
                "all_items": False,
                "items": {"mcqa": 4, "gen": 4},
                "protocol_tokens": False,
                "max_new_tokens": {"mcqa": 8, "gen": 8},
                "wall_s": 20.0,
                "parts": {"rest_s": 20.0},
                "tokens_per_s": {},
                "peak_gpu_memory_gib": {},
            },
            {
                "event": "sweep",
                "rows": [{"batch_size": 1, "extrapolated": True, "wall_s": 400.0, "tokens_per_s": {}, "peak_gpu_memory_gib": {}}],
            },
            {"event": "skipped", "stage": "sweep_b16", "estimate_s": 60, "left_s": 10, "budget_s": 560},
            {"event": "class_batching", "model": "llava_hf", "batch_size": 4, "refused": True, "error": "AssertionError: no"},
        ]
    )
    text = "\n".join(lines)
    assert "ONLY" in text and "NOT the protocol's" in text and "(extrapolated)" in text
    assert "SKIPPED sweep_b16" in text and "refused by the class" in text


def test_step_clock_notes_each_step_and_stops_nothing():
    torch = pytest.importorskip("torch")
    from siuo_dev.gpu_phases import StepClock

    clock = StepClock()
    for _ in range(3):
        stop = clock(torch.zeros((2, 5), dtype=torch.long), None)
        assert stop.tolist() == [False, False]
    assert len(clock.stamps) == 3 and clock.stamps == sorted(clock.stamps)


def test_doctor_reports_what_is_known_about_batching_and_no_guessed_size():
    from siuo_task.cli.doctor import OK, WARN, check_batching
    from siuo_task.harnesses.lmms_eval.batching import CLASSES

    assert check_batching("openai") is None  # no row: no check
    qwen25 = check_batching("qwen2_5_vl")
    assert qwen25.status == OK and "left" in qwen25.detail and "not measured yet" in qwen25.detail
    qwen2 = check_batching("qwen2_vl")
    assert qwen2.status == WARN and "padding_side" in qwen2.fix and "--batch_size 1" in qwen2.fix
    llava = check_batching("llava_hf")
    assert llava.status == WARN and "refuses" in llava.detail and llava.fix == "use --batch_size 1"
    # a recommended batch size comes only from a GPU measurement that names its source
    assert all(row.recommended_batch_size is None or row.measured_on for row in CLASSES.values())


# ------------------------------------------------------------------------- the wheels and gpu_check.sh

_SCRIPTS = __import__("pathlib").Path(__file__).resolve().parents[1] / "scripts"


def _import_check(name: str) -> dict:
    """A ``name = {...}`` dict of the import check inside ``gpu_check.sh``."""
    import ast
    import re

    text = (_SCRIPTS / "gpu_check.sh").read_text(encoding="utf-8")
    found = re.search(rf"^{name} = (\{{.*?\n?\}})$", text, re.S | re.M)
    assert found, f"gpu_check.sh has no {name} = {{...}}"
    return ast.literal_eval(found.group(1))


def _wheels() -> dict:
    lines = (_SCRIPTS / "gpu-wheels.txt").read_text(encoding="utf-8").splitlines()
    specs = [line.split("#")[0].strip() for line in lines]
    return dict(spec.split("==", 1) for spec in specs if spec)


def test_the_import_check_stops_only_for_packages_a_run_needs():
    """What gpu-wheels.txt leaves out as optional must not stop gpu_check.sh on the GPU machine."""
    needed, optional = _import_check("needed"), _import_check("optional")
    header = (_SCRIPTS / "gpu-wheels.txt").read_text(encoding="utf-8")
    named_optional = next(line for line in header.splitlines() if "are optional" in line)
    for dist in ("numexpr", "zstandard"):
        assert dist in named_optional and dist in optional and dist not in needed
    assert not set(optional) & set(_wheels()) and "lmms-eval" in needed and "transformers" in needed


def test_the_transformers_note_names_the_version_the_cpu_tests_pin():
    """gpu_check.sh notes another transformers than the CPU tests' pin; the wheels carry that pin."""
    import re

    constraints = (_SCRIPTS / "constraints-main.txt").read_text(encoding="utf-8")
    pin = re.search(r"^transformers==(\S+)$", constraints, re.M).group(1)
    script = (_SCRIPTS / "gpu_check.sh").read_text(encoding="utf-8")
    assert f'startswith("{pin.rsplit(".", 1)[0]}.")' in script and f"the CPU tests pin {pin}" in script
    assert f"transformers-{pin}-py3-none-any.whl" in script
    assert _wheels()["transformers"] == pin
