"""Peak memory (RSS) of a full ``siuo score gen`` run with photo-sized images, as a ratio to 1 GiB.

167 items x 3 answers x 2 judge calls against a fake judge (100 ms per call), ``--concurrency 32``,
a fresh cache; every image is a 1024x768 noisy PNG (about 1.9 MB, so each judge request carries
about 2.5 MB of base64). The CLI runs as a child process reaped with ``os.wait4``, whose
``ru_maxrss`` is that process's own peak resident set size. A second run on the now-warm cache
(no judge call) and a bare ``siuo --version`` are measured for comparison.

    python benchmarks/memory.py [--concurrency 32] [--latency 0.1]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

GIB = 1024**3
TARGET_BYTES = GIB


def main(argv=None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="fake judge latency per call, seconds (default 0.1)")
    parser.add_argument("--concurrency", type=int, default=32, help="--concurrency for siuo score gen (default 32)")
    args = parser.parse_args(argv)

    with _common.work_dir(args) as work:
        data_dir = _common.realistic_data_dir(work / "data-photo")
        n_images, image_bytes = _common.image_bytes(data_dir)
        responses = work / "responses.json"
        n_items, expected_calls = _common.write_gen_submission(data_dir, responses)
        cache = work / "memory-cache"
        if cache.exists():
            import shutil

            shutil.rmtree(cache)
        with _common.fake_judge(latency_s=args.latency) as server:
            cold = _common.score_gen_cli(
                responses, work / "cold.json", data_dir, server.url, cache, concurrency=args.concurrency, quiet=True
            )
            cold_calls = server.judging_calls
            warm = _common.score_gen_cli(
                responses, work / "warm.json", data_dir, server.url, cache, concurrency=args.concurrency, quiet=True
            )
            warm_calls = server.judging_calls - cold_calls
        bare = _common.run_child(_common.module_cmd("siuo_task.cli", "--version"), env=_common.child_env())

    usage = cold["result"]["provenance"]["judge"]["usage"]
    if cold_calls != expected_calls or usage["calls"] != expected_calls or usage["failures"]:
        print(
            f"FAIL: the cold run made {cold_calls} calls (provenance {usage['calls']}, {usage['failures']} failed), "
            f"expected {expected_calls}",
            file=sys.stderr,
        )
        return 1
    if warm_calls:
        print(f"FAIL: the warm run made {warm_calls} judge calls", file=sys.stderr)
        return 1

    peak = cold["peak_rss_bytes"]
    mib = 1024**2
    print(
        f"SIUO memory: siuo score gen, {n_items} items x {_common.N_ANSWERS} answers, {expected_calls} judge calls, "
        f"concurrency {args.concurrency}, {n_images} 1024x768 PNGs ({image_bytes / n_images / 1e6:.2f} MB each, "
        f"{image_bytes / 1e6:.0f} MB in all)"
    )
    print(
        f"  peak RSS, cold run           {peak / mib:7.1f} MiB   ratio to 1 GiB: {peak / TARGET_BYTES:.3f}  "
        f"({'met' if peak < TARGET_BYTES else 'MISSED'})   wall {cold['wall_s']:.1f} s"
    )
    print(f"  peak RSS, warm re-scoring    {warm['peak_rss_bytes'] / mib:7.1f} MiB   wall {warm['wall_s']:.1f} s (0 judge calls)")
    print(f"  peak RSS, 'siuo --version'   {bare['peak_rss_bytes'] / mib:7.1f} MiB   (interpreter + CLI module)")
    _common.emit(
        "memory",
        {
            "items": n_items,
            "calls": expected_calls,
            "concurrency": args.concurrency,
            "image_mb_avg": round(image_bytes / n_images / 1e6, 3),
            "peak_rss_mib": round(peak / mib, 1),
            "target_mib": TARGET_BYTES // mib,
            "ratio_to_target": round(peak / TARGET_BYTES, 3),
            "warm_peak_rss_mib": round(warm["peak_rss_bytes"] / mib, 1),
            "bare_cli_peak_rss_mib": round(bare["peak_rss_bytes"] / mib, 1),
            "cold_wall_s": round(cold["wall_s"], 2),
            "warm_wall_s": round(warm["wall_s"], 2),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
