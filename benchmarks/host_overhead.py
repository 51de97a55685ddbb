"""Host-side cost of the SIUO lmms-eval task itself, in ms per item, as a ratio to a 5 ms target.

Part 1 times the adapter hooks (``siuo_task.harnesses.lmms_eval.hooks``) directly over all 167 items, stage
by stage: ``process_docs`` (load + validate the data, build the dataset, judge preflight; once per
run, spread over the items), request building (``doc_to_text`` + ``doc_to_visual`` for simple
models, ``doc_to_messages`` for chat models, image decoding included), ``process_results``, and the
aggregation on a warm judge cache (scoring all answers, writing the result file). The bare decode
of each image (``Image.open().convert("RGB")``), which any image task pays, is printed beside it.

Part 2 runs the real ``lmms-eval`` CLI entry (``lmms_eval.__main__.cli_evaluate``) in a child
process with lmms-eval's own instant ``dummy`` model (``read_bytes=1``, so it calls
``doc_to_visual`` like a real model) on ``siuo_gen`` (warm judge cache, ``--log_samples``): a
warm-up run (imports, judge cache), then timed runs of all 167 items and of ``--limit 1``.
Host time = wall - lmms-eval's task index (it parses every lmms-eval YAML, whatever the task;
built once in the warm-up run and reused) - model time (the dummy's ``generate_until`` minus the ``doc_to_visual`` calls it makes); per item
both as host / items and as the marginal cost (full - limit 1) / 166.

Images are photo-sized (1024x768 noisy PNGs, about 1.9 MB) unless ``--placeholder`` is given.

    python benchmarks/host_overhead.py [--placeholder] [--skip-whole-run]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

TARGET_MS = 5.0


def _judge_env(data_dir: Path, base_url: str, cache: Path) -> dict:
    return {
        "SIUO_DATA_DIR": str(data_dir),
        "SIUO_JUDGE_BASE_URL": base_url,
        "SIUO_JUDGE_MODEL": "fake-judge",
        "SIUO_JUDGE_API_KEY": "benchmark-key",
        "SIUO_JUDGE_CACHE": str(cache),
    }


# ------------------------------------------------------------------------------------- part 1


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def time_hooks(work: Path, data_dir: Path, server) -> dict:
    """Time every adapter hook over all items in this process (seconds per stage, totals)."""
    for key in [k for k in os.environ if k.startswith(("SIUO_", "OPENAI_"))]:
        del os.environ[key]
    cache = work / "hook-cache"
    os.environ.update(_judge_env(data_dir, server.url, cache))
    # What the harness has imported before any hook runs is not the task's cost.
    import datasets  # noqa: F401
    import lmms_eval.utils  # noqa: F401
    import loguru
    import openai  # noqa: F401  (lmms-eval imports it for its API models)
    import tqdm.auto  # noqa: F401
    from PIL import Image

    from siuo_task.core import scoring
    from siuo_task.harnesses.lmms_eval import hooks as adapter
    from siuo_task.judge import JudgeClient, JudgeConfig

    loguru.logger.remove()  # the aggregation logs a table per call; keep the output readable
    t = {}
    dataset, t["process_docs"] = _timed(adapter.gen_process_docs, None)
    docs = [dataset[i] for i in range(len(dataset))]
    n = len(docs)
    mcqa_dataset, t["mcqa_process_docs"] = _timed(adapter.mcqa_process_docs, None)
    mcqa_docs = [mcqa_dataset[i] for i in range(len(mcqa_dataset))]

    def total(fn, rows, *extra):
        start = time.perf_counter()
        for row in rows:
            fn(row, *extra)
        return time.perf_counter() - start

    def decode(doc):
        with Image.open(doc["image_path"]) as img:
            return img.convert("RGB")

    total(decode, docs)  # page the images in once, so every stage below reads from the page cache
    t["image_decode_only"] = total(decode, docs)
    t["doc_to_text"] = total(adapter.gen_doc_to_text, docs)
    t["doc_to_visual"] = total(adapter.doc_to_visual, docs)
    t["doc_to_messages"] = total(adapter.gen_doc_to_messages, docs)
    t["mcqa_doc_to_text"] = total(adapter.mcqa_doc_to_text, mcqa_docs)

    rows = json.loads((work / "responses.json").read_text(encoding="utf-8"))
    answers = {row["question_id"]: row["responses"] for row in rows}
    start = time.perf_counter()
    gen_records = [adapter.gen_process_results(doc, [answers[doc["question_id"]][0]])["safe"] for doc in docs]
    t["process_results"] = time.perf_counter() - start
    start = time.perf_counter()
    vote3_records = [adapter.gen_vote3_process_results(doc, [answers[doc["question_id"]]])["safe"] for doc in docs]
    t["process_results_vote3"] = time.perf_counter() - start
    start = time.perf_counter()
    mcqa_records = [adapter.mcqa_process_results(doc, ["A"])["accuracy"] for doc in mcqa_docs]
    t["mcqa_process_results"] = time.perf_counter() - start

    # Warm the judge cache with the same code path and settings the aggregation uses.
    before = server.judging_calls
    items_by_id = {doc["question_id"]: doc for doc in docs}
    with JudgeClient(JudgeConfig.from_env()) as client:
        scoring.score_gen(answers, list(items_by_id.values()), client, progress=False)
    warm_calls = server.judging_calls - before

    out = argparse.Namespace(output_path=str(work / "hook-out"), model="dummy", model_args="", gen_kwargs="", limit=None)
    before = server.judging_calls
    # the judge's progress bar is written, as in a real run, but not shown
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
        aggregation_times(adapter, gen_records, vote3_records, mcqa_records, out, t)
    aggregation_calls = server.judging_calls - before
    return {"n": n, "seconds": t, "warm_calls": warm_calls, "aggregation_calls": aggregation_calls}


def aggregation_times(adapter, gen_records, vote3_records, mcqa_records, out, t) -> None:
    os.environ.setdefault("SIUO_RESULTS_DIR", str(Path(out.output_path) / "siuo"))  # no harness run folder here
    for name, records in (("aggregation", gen_records), ("aggregation_vote3", vote3_records)):
        # each task's scoring session begins where the harness builds its documents (not timed here)
        (adapter.gen_process_docs if name == "aggregation" else adapter.gen_vote3_process_docs)(None)
        start = time.perf_counter()
        for aggregate in (adapter.aggregate_safe, adapter.aggregate_effective, adapter.aggregate_safe_effective):
            aggregate(records, args=out)
        t[name] = time.perf_counter() - start
    adapter.mcqa_process_docs(None)
    start = time.perf_counter()
    adapter.aggregate_accuracy(mcqa_records, args=out)
    adapter.aggregate_unparsed(mcqa_records, args=out)
    t["mcqa_aggregation"] = time.perf_counter() - start


# ------------------------------------------------------------------------------------- part 2

_CHILD_FLAG = "--whole-run-child"


def _forget_memos(adapter, data) -> None:
    """What a new process would not have: the validated data. (Scores are not carried over: each
    evaluation begins its own scoring session.)"""
    if not hasattr(adapter, "sessions"):
        raise RuntimeError("siuo_task.harnesses.lmms_eval.hooks: no scoring sessions (adapter.sessions)")
    if not hasattr(data, "_cache"):
        raise RuntimeError("siuo_task.core.data: found no load_items memo (_cache) to reset")
    data._cache.clear()  # a new process validates the data again


def whole_run_child(out_dir: str, repeat: int) -> None:
    """In the child: lmms-eval CLI runs in one process, with the non-task costs clocked.

    A warm-up run (all items) pays the imports, lmms-eval's task index (it parses every lmms-eval
    YAML, whatever the task; reused afterwards) and fills the judge cache. Then ``repeat`` timed
    runs of all items and of ``--limit 1`` alternate, each starting from cleared SIUO memos (as a
    new process would). Clocked: the task index, the model's ``generate_until``, and the
    ``doc_to_visual`` calls made inside it.
    """
    import lmms_eval.models.simple.dummy as dummy_module
    from lmms_eval.__main__ import cli_evaluate
    from lmms_eval.tasks import TaskManager

    from siuo_task.core import data
    from siuo_task.harnesses.lmms_eval import hooks as adapter
    from siuo_task.harnesses.paths import lmms_eval_tasks_dir

    clock = {}

    def clocked(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                clock[name] = clock.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    adapter.doc_to_visual = clocked("visual", adapter.doc_to_visual)  # utils.py imports it when the task loads
    dummy_module.Dummy.generate_until = clocked("generate", dummy_module.Dummy.generate_until)
    index_memo = {}
    real_index = TaskManager.initialize_tasks

    def initialize_tasks(self, include_path=None, include_defaults=True):
        key = (repr(include_path), include_defaults)
        if key not in index_memo:
            index_memo[key] = real_index(self, include_path=include_path, include_defaults=include_defaults)
        return copy.deepcopy(index_memo[key])

    TaskManager.initialize_tasks = clocked("task_index", initialize_tasks)

    def run(name, limit):
        argv = [
            "lmms-eval",
            "--model",
            "dummy",
            "--model_args",
            "read_bytes=1",
            "--tasks",
            "siuo_gen",
            "--include_path",
            str(lmms_eval_tasks_dir()),
            "--output_path",
            os.path.join(out_dir, name),
            "--log_samples",
            "--verbosity",
            "WARNING",
        ]
        if limit:
            argv += ["--limit", str(limit)]
        sys.argv = argv
        _forget_memos(adapter, data)
        clock.clear()
        start = time.perf_counter()
        cli_evaluate()
        return {"wall_s": time.perf_counter() - start, **{k: clock.get(k, 0.0) for k in ("task_index", "generate", "visual")}}

    runs = {"warmup": run("warmup", None), "full": [], "one": []}
    for index in range(repeat):
        runs["full"].append(run(f"full-{index}", None))
        runs["one"].append(run(f"one-{index}", 1))
    print(json.dumps(runs))


def whole_run(work: Path, data_dir: Path, server, repeat: int) -> dict:
    cache = work / "run-cache"
    env = _common.child_env(_judge_env(data_dir, server.url, cache))
    env["WANDB_MODE"] = "disabled"
    cmd = [_common.PYTHON, str(Path(__file__).resolve()), _CHILD_FLAG, str(work / "run-out"), str(repeat)]
    child = _common.run_child(cmd, env=env, timeout=900)
    if child["rc"] != 0:
        raise RuntimeError(f"lmms-eval whole run failed (exit {child['rc']}):\n{child['stderr'][-4000:]}")
    runs = json.loads(child["stdout"].strip().splitlines()[-1])
    best = {}
    for kind, expect_n in (("full", 167), ("one", 1)):
        for index, figures in enumerate(runs[kind]):
            folder = work / "run-out" / f"{kind}-{index}"
            results = sorted(folder.glob("*/*_siuo_siuo_gen.json"))  # beside lmms-eval's <date>_results.json
            if len(results) != 1:
                raise RuntimeError(f"{folder}: {len(results)} SIUO result file(s), expected 1:\n{child['stderr'][-4000:]}")
            result = json.loads(results[0].read_text(encoding="utf-8"))
            if result["counts"]["n"] != expect_n:
                raise RuntimeError(f"{folder}: {result['counts']['n']} items scored, expected {expect_n}")
            figures["scored_items"] = expect_n
            figures["judge_calls"] = result["provenance"]["judge"]["usage"]["calls"]
            # host: all but lmms-eval's task index and the model (whose doc_to_visual calls are the task's)
            figures["host_s"] = figures["wall_s"] - figures["task_index"] - (figures["generate"] - figures["visual"])
        best[kind] = min(runs[kind], key=lambda f: f["host_s"])  # noise on a shared machine only adds time
    best["judge_calls"] = sum(f["judge_calls"] for kind in ("full", "one") for f in runs[kind])
    best["task_index_s"] = runs["warmup"]["task_index"]
    best["process_wall_s"] = child["wall_s"]
    best["repeat"] = repeat
    return best


# ------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == _CHILD_FLAG:
        whole_run_child(argv[1], int(argv[2]))
        return 0
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--placeholder", action="store_true", help="64x48 placeholder images instead of photo-sized ones")
    parser.add_argument("--skip-whole-run", action="store_true", help="only time the hooks (part 1)")
    parser.add_argument("--repeat", type=int, default=2, help="timed lmms-eval runs of each kind; the best is reported (default 2)")
    args = parser.parse_args(argv)

    with _common.work_dir(args) as work:
        data_dir = _common.data_dir(work, photo=not args.placeholder)
        n_images, image_bytes = _common.image_bytes(data_dir)
        _common.write_gen_submission(data_dir, work / "responses.json")
        with _common.fake_judge(latency_s=0.0) as server:
            hooks = time_hooks(work, data_dir, server)
            run = None if args.skip_whole_run else whole_run(work, data_dir, server, args.repeat)

    if hooks["aggregation_calls"]:
        print(f"FAIL: the aggregation made {hooks['aggregation_calls']} judge calls on a warm cache", file=sys.stderr)
        return 1
    if run is not None and run["judge_calls"]:
        print(f"FAIL: the timed lmms-eval runs made {run['judge_calls']} judge calls on a warm cache", file=sys.stderr)
        return 1
    n = hooks["n"]
    ms = {name: 1000 * s / n for name, s in hooks["seconds"].items()}
    request_simple = ms["doc_to_text"] + ms["doc_to_visual"]
    request_chat = ms["doc_to_messages"]
    request = max(request_simple, request_chat)
    total = ms["process_docs"] + request + ms["process_results"] + ms["aggregation"]
    total_vote3 = ms["process_docs"] + request + ms["process_results_vote3"] + ms["aggregation_vote3"]
    decode = ms["image_decode_only"]
    size = "placeholder 64x48" if args.placeholder else "1024x768"

    print(
        f"SIUO host-side overhead, lmms-eval adapter hooks over all {n} items "
        f"({n_images} {size} PNGs, {image_bytes / n_images / 1e6:.2f} MB each on average)"
    )
    print(f"  {'stage':44s} {'ms/item':>8s}")
    rows = [
        ("process_docs (once per run, spread)", ms["process_docs"]),
        ("request: doc_to_text + doc_to_visual (simple)", request_simple),
        ("request: doc_to_messages (chat)", request_chat),
        ("process_results (siuo_gen)", ms["process_results"]),
        ("process_results (siuo_gen_vote3)", ms["process_results_vote3"]),
        ("aggregation, warm judge cache (siuo_gen)", ms["aggregation"]),
        ("aggregation, warm judge cache (vote3)", ms["aggregation_vote3"]),
    ]
    for label, value in rows:
        print(f"  {label:44s} {value:8.2f}")
    print(f"  {'total siuo_gen (docs + request + results + agg)':44s} {total:8.2f}   ratio to {TARGET_MS:g} ms: {total / TARGET_MS:.2f}")
    print(f"  {'total siuo_gen_vote3':44s} {total_vote3:8.2f}   ratio to {TARGET_MS:g} ms: {total_vote3 / TARGET_MS:.2f}")
    print(
        f"  of which bare image decoding (Image.open().convert('RGB'), per decode): {decode:.2f} ms; "
        f"process_docs decodes each image once to validate it, request building once more"
    )
    print(
        f"  siuo_mcqa: process_docs {ms['mcqa_process_docs']:.2f}, doc_to_text {ms['mcqa_doc_to_text']:.3f}, "
        f"process_results {ms['mcqa_process_results']:.3f}, aggregation {ms['mcqa_aggregation']:.3f} ms/item"
    )
    figures = {
        "items": n,
        "images": size,
        "image_mb_avg": round(image_bytes / n_images / 1e6, 3),
        "ms_per_item": {k: round(v, 3) for k, v in ms.items()},
        "request_ms_per_item": round(request, 3),
        "total_ms_per_item": round(total, 3),
        "total_vote3_ms_per_item": round(total_vote3, 3),
        "target_ms": TARGET_MS,
        "ratio_to_target": round(total / TARGET_MS, 3),
        "ratio_to_target_vote3": round(total_vote3 / TARGET_MS, 3),
    }
    if run is not None:
        full, one = run["full"], run["one"]
        n_full = full["scored_items"]
        per_item = 1000 * full["host_s"] / n_full
        marginal = 1000 * (full["host_s"] - one["host_s"]) / (n_full - one["scored_items"])
        print(f"  whole lmms-eval run (dummy model, siuo_gen, warm judge cache, --log_samples), best of {run['repeat']}:")
        print(
            f"    {n_full} items: wall {full['wall_s']:.2f} s = host {full['host_s']:.2f} s (doc_to_visual {full['visual']:.2f} s of it)"
            f" + model {1000 * (full['generate'] - full['visual']):.0f} ms (+ lmms-eval's task index: {run['task_index_s']:.1f} s once per process, not counted)"
        )
        print(
            f"    --limit 1: wall {one['wall_s']:.2f} s = host {one['host_s']:.2f} s (fixed per-run cost: lmms-eval task building + SIUO process_docs)"
        )
        print(f"    host ms/item, whole run (host / items)       {per_item:8.2f}   ratio to {TARGET_MS:g} ms: {per_item / TARGET_MS:.2f}")
        print(f"    host ms/item, marginal ((full - 1) / (n-1))  {marginal:8.2f}   ratio to {TARGET_MS:g} ms: {marginal / TARGET_MS:.2f}")
        hooks_s = total * n / 1000
        print(
            f"    of the host time, the SIUO hooks (part 1) account for about {hooks_s:.2f} s ({100 * hooks_s / full['host_s']:.0f}%); "
            "the rest is lmms-eval's own per-run work (task building, requests, sample logging, results)"
        )
        print(f"    judge calls in the timed runs: {run['judge_calls']}; child process {run['process_wall_s']:.0f} s in all")
        figures["whole_run"] = {
            "wall_s": round(full["wall_s"], 3),
            "host_s": round(full["host_s"], 3),
            "model_s": round(full["generate"] - full["visual"], 4),
            "doc_to_visual_s": round(full["visual"], 3),
            "limit1_host_s": round(one["host_s"], 3),
            "task_index_s": round(run["task_index_s"], 3),
            "host_ms_per_item": round(per_item, 3),
            "marginal_host_ms_per_item": round(marginal, 3),
            "ratio_to_target": round(per_item / TARGET_MS, 3),
            "siuo_hooks_share": round(hooks_s / full["host_s"], 3),
            "timed_run_judge_calls": run["judge_calls"],
        }
    _common.emit("host_overhead", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
