"""Re-scoring the full generation setting on a warm judge cache: zero judge calls, and how long.

The same submission as ``judge_throughput.py`` (167 items x 3 answers) is scored once to fill a
fresh cache (a fake judge with no latency), then scored again by the real CLI
(``python -m siuo_task.cli score gen``) against the same, still-running fake server: the second run
must make no judge call (checked on the server and in the result's provenance) and should take
under 2 s, Python start-up included. The in-process time of ``score_gen`` on the warm cache and
the bare start-up costs are printed beside it. ``--photo`` uses photo-sized images instead of the
64x48 placeholders (the CLI validates and hashes every image, so image size matters here).

    python benchmarks/cached_rescoring.py [--repeat 3] [--photo]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

TARGET_S = 2.0


def in_process_warm(data_dir: Path, responses: Path, base_url: str, cache: Path) -> dict:
    """Time score_gen (items loaded, judge client built, cache read, rates computed) in this process."""
    from siuo_task.core.data import load_items
    from siuo_task.core.scoring import score_gen
    from siuo_task.judge import JudgeClient, JudgeConfig

    rows = json.loads(responses.read_text(encoding="utf-8"))
    answers = {row["question_id"]: row["responses"] for row in rows}
    start = time.perf_counter()
    items, source = load_items("gen", data_dir)
    loaded = time.perf_counter()
    config = JudgeConfig(model="fake-judge", base_url=base_url, api_key="benchmark-key", concurrency=32, cache_dir=str(cache))
    with JudgeClient(config) as client:
        result = score_gen(answers, items, client, source=source, progress=False)
    done = time.perf_counter()
    return {
        "load_items_s": loaded - start,
        "score_gen_s": done - loaded,
        "total_s": done - start,
        "calls": result["provenance"]["judge"]["usage"]["calls"],
        "cache_hits": result["provenance"]["judge"]["usage"]["cache_hits"],
    }


def startup_costs() -> dict:
    """Wall time of a bare interpreter and of ``siuo --version`` (imports the CLI module only)."""
    env = _common.child_env()
    bare = min(_common.run_child([_common.PYTHON, "-c", "pass"], env=env)["wall_s"] for _ in range(3))
    cli = min(_common.run_child([_common.PYTHON, "-m", "siuo_task.cli", "--version"], env=env)["wall_s"] for _ in range(3))
    return {"python_s": bare, "cli_version_s": cli}


def main(argv=None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm CLI runs; the median is reported (default 3)")
    parser.add_argument("--photo", action="store_true", help="photo-sized images (1024x768 noisy PNGs) instead of 64x48 placeholders")
    args = parser.parse_args(argv)

    with _common.work_dir(args) as work:
        data_dir = _common.data_dir(work, photo=args.photo)
        n_images, image_bytes = _common.image_bytes(data_dir)
        responses = work / "responses.json"
        n_items, expected_calls = _common.write_gen_submission(data_dir, responses)
        cache = work / "cache"
        with _common.fake_judge(latency_s=0.0) as server:
            cold = _common.score_gen_cli(responses, work / "cold.json", data_dir, server.url, cache, quiet=True)
            cold_calls = server.judging_calls
            warm_runs = []
            for index in range(args.repeat):
                before = server.judging_calls
                run = _common.score_gen_cli(responses, work / f"warm-{index}.json", data_dir, server.url, cache, quiet=True)
                usage = run["result"]["provenance"]["judge"]["usage"]
                warm_runs.append(
                    {
                        "wall_s": run["wall_s"],
                        "server_calls": server.judging_calls - before,
                        "provenance_calls": usage["calls"],
                        "cache_hits": usage["cache_hits"],
                        "metrics": run["result"]["metrics"],
                    }
                )
            before = server.judging_calls
            inproc = in_process_warm(data_dir, responses, server.url, cache)
            inproc["server_calls"] = server.judging_calls - before
        startup = startup_costs()

    if cold_calls != expected_calls:
        print(f"FAIL: the cold run made {cold_calls} judge calls, expected {expected_calls}", file=sys.stderr)
        return 1
    for run in warm_runs + [inproc]:
        if run["server_calls"] != 0 or run.get("provenance_calls", run.get("calls")) != 0:
            print(f"FAIL: a warm run made judge calls: {run}", file=sys.stderr)
            return 1
        if run["cache_hits"] != expected_calls:
            print(f"FAIL: a warm run had {run['cache_hits']} cache hits, expected {expected_calls}", file=sys.stderr)
            return 1
    if any(run["metrics"] != cold["result"]["metrics"] for run in warm_runs):
        print("FAIL: warm re-scoring changed the metrics", file=sys.stderr)
        return 1

    wall = statistics.median(r["wall_s"] for r in warm_runs)
    size = "1024x768" if args.photo else "64x48 placeholder"
    print(
        f"SIUO cached re-scoring: {n_items} items x {_common.N_ANSWERS} answers, {expected_calls} cached judge replies, "
        f"{len(warm_runs)} warm run(s), {n_images} {size} PNGs ({image_bytes / n_images / 1e6:.2f} MB each)"
    )
    print(f"  machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(
        f"  judge calls on warm cache   0 (fake server: {sum(r['server_calls'] for r in warm_runs)}, provenance: "
        f"{sum(r['provenance_calls'] for r in warm_runs)}; cache hits {warm_runs[0]['cache_hits']}/run)"
    )
    print(
        f"  CLI wall (warm)             {wall:6.2f} s   ratio to the {TARGET_S:g} s target {wall / TARGET_S:.2f}  "
        f"({'met' if wall < TARGET_S else 'MISSED'})"
    )
    print(
        f"  in-process, warm            {inproc['total_s']:6.2f} s   (load_items {inproc['load_items_s']:.2f} s + score_gen {inproc['score_gen_s']:.2f} s)"
    )
    print(f"  bare python start-up        {startup['python_s']:6.2f} s;  'siuo --version' {startup['cli_version_s']:.2f} s")
    print(f"  (cold run for reference: {cold['wall_s']:.2f} s with a 0 ms judge)")
    _common.emit(
        "cached_rescoring",
        {
            "items": n_items,
            "images": size,
            "cached_replies": expected_calls,
            "warm_calls": 0,
            "wall_s": round(wall, 3),
            "target_s": TARGET_S,
            "ratio_to_target": round(wall / TARGET_S, 3),
            "in_process_s": round(inproc["total_s"], 3),
            "in_process_score_gen_s": round(inproc["score_gen_s"], 3),
            "in_process_load_items_s": round(inproc["load_items_s"], 3),
            "python_startup_s": round(startup["python_s"], 3),
            "cli_version_s": round(startup["cli_version_s"], 3),
            "runs": [round(r["wall_s"], 3) for r in warm_runs],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
