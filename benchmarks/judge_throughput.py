"""Judge throughput of ``siuo score gen`` in the full generation setting, as a ratio to the ideal.

167 items x 3 answers x 2 judge calls (safety + effectiveness) = 1,002 calls, scored by the real
CLI (``python -m siuo_task.cli score gen``, a fresh ``--cache-dir``) against a fake
OpenAI-compatible judge that answers every call after a fixed latency (100 ms by default).

    ideal      = calls x latency / concurrency   (the judge is the only cost, perfectly overlapped)
    efficiency = ideal / wall                     target >= 0.8 (whole process), >= 0.9 (judge phase)
                                                  at concurrency 32

A second case scores a smaller submission against a rate-limited judge: ``--rate-per-min`` N calls a
minute through a token bucket that holds one second of calls (N/60) and starts full, as providers'
limiters allow short bursts; other calls get HTTP 429 with Retry-After and retry-after-ms, as OpenAI
sends. Every token used as soon as it exists:

    ideal      = (calls - N/60) x 60 / N + latency
    efficiency = ideal / judge phase              target >= 0.85

Two walls are reported: the whole CLI process (Python start-up, imports, data validation,
writing the result included) and the judge phase alone (from the server's first to its last
reply, plus one latency). The machine may be shared, and other load only ever adds time, so the
best of ``--repeat`` cold runs is printed beside the median. The fixed cost of a run (the same
command on the now-warm cache) gives the whole-process ceiling: ideal / (rounds x latency + fixed).

    python benchmarks/judge_throughput.py [--latency 0.1] [--concurrency 32] [--repeat 3] [--rate-per-min 600]
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

TARGET = 0.8
PHASE_TARGET = 0.9
RATE_TARGET = 0.85


class TimedResponder:
    """The fake server's default judge, recording when each reply is produced."""

    def __init__(self):
        from siuo_task.judge import PREFLIGHT_PROMPT
        from siuo_task.judge.dry_run import default_responder, prompt_text

        self._preflight = PREFLIGHT_PROMPT
        self._text = prompt_text

        self._respond = default_responder
        self._lock = threading.Lock()
        self.times: list[float] = []

    def __call__(self, body: dict) -> str:
        if self._text(body).startswith(self._preflight):
            return "OK"  # the CLI's preflight check call: before the judge phase
        with self._lock:
            self.times.append(time.perf_counter())
        return self._respond(body)

    def reset(self) -> None:
        with self._lock:
            self.times.clear()


def one_run(work: Path, data_dir: Path, responses: Path, server, responder, args, index: int) -> dict:
    cache = work / f"cache-{index}"  # fresh: every call goes to the judge
    calls_before = server.judging_calls
    responder.reset()
    run = _common.score_gen_cli(responses, work / f"result-{index}.json", data_dir, server.url, cache,
                                concurrency=args.concurrency, quiet=args.quiet)
    server_calls = server.judging_calls - calls_before
    usage = run["result"]["provenance"]["judge"]["usage"]
    times = sorted(responder.times)
    judge_phase = (times[-1] - times[0] + args.latency) if times else 0.0
    return {
        "wall_s": run["wall_s"],
        "judge_phase_s": judge_phase,
        "server_calls": server_calls,
        "provenance_calls": usage["calls"],
        "cache_hits": usage["cache_hits"],
        "failures": usage["failures"],
        "cpu_s": run["cpu_s"],
        "result_n": run["result"]["counts"]["n"],
    }


def rate_limited_case(work: Path, data_dir: Path, responses: Path, args) -> dict:
    """Score the first ``--rate-items`` items against a judge admitting ``--rate-per-min`` calls a minute."""
    import json

    rows = json.loads(responses.read_text(encoding="utf-8"))[: args.rate_items]
    subset = work / "responses-rate.json"
    subset.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    calls = 2 * _common.N_ANSWERS * len(rows)
    responder = TimedResponder()
    with _common.fake_judge(responder=responder, latency_s=args.latency, rate_per_min=args.rate_per_min) as server:
        run = _common.score_gen_cli(subset, work / "result-rate.json", data_dir, server.url, work / "cache-rate",
                                    concurrency=args.concurrency, quiet=args.quiet)
        sent = server.judging_calls
    usage = run["result"]["provenance"]["judge"]["usage"]
    if usage["calls"] - usage["retries"] != calls or usage["failures"]:
        raise SystemExit(f"FAIL: rate-limited case: {usage}")
    times = sorted(responder.times)
    phase = times[-1] - times[0] + args.latency
    burst = max(1.0, args.rate_per_min / 60.0)
    ideal = (calls - burst) * 60.0 / args.rate_per_min + args.latency
    return {"calls": calls, "rate_per_min": args.rate_per_min, "ideal_s": round(ideal, 3), "judge_phase_s": round(phase, 3),
            "efficiency": round(ideal / phase, 3), "rejected": sent - calls, "retries": usage["retries"],
            "waited_s": usage["waited_s"], "wall_s": round(run["wall_s"], 3)}


def main(argv=None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="fake judge latency per call, seconds (default 0.1)")
    parser.add_argument("--concurrency", type=int, default=32, help="--concurrency for siuo score gen (default 32)")
    parser.add_argument("--repeat", type=int, default=3, help="cold runs to make (default 3); best and median are reported")
    parser.add_argument("--quiet", action="store_true", help="pass --quiet (no progress bar) to the CLI")
    parser.add_argument("--rate-per-min", type=float, default=600, help="rate-limited case: calls a minute the judge admits (default 600)")
    parser.add_argument("--rate-items", type=int, default=20, help="rate-limited case: items scored (x 3 answers x 2 calls; default 20)")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    with _common.work_dir(args) as work:
        data_dir = _common.placeholder_data_dir(work / "data")
        responses = work / "responses.json"
        n_items, expected_calls = _common.write_gen_submission(data_dir, responses)
        responder = TimedResponder()
        runs = []
        with _common.fake_judge(responder=responder, latency_s=args.latency) as server:
            for index in range(args.repeat):
                runs.append(one_run(work, data_dir, responses, server, responder, args, index))
            # The fixed part of a run (start-up, imports, data, result file): the same command on the warm cache.
            before = server.judging_calls
            fixed = _common.score_gen_cli(responses, work / "warm.json", data_dir, server.url, work / "cache-0",
                                          concurrency=args.concurrency, quiet=args.quiet)
            fixed_calls = server.judging_calls - before
        limited = rate_limited_case(work, data_dir, responses, args)
    load_after = os.getloadavg()

    for run in runs:
        if run["server_calls"] != expected_calls or run["provenance_calls"] != expected_calls:
            print(f"FAIL: expected {expected_calls} judge calls, the server saw {run['server_calls']}, "
                  f"the result's provenance says {run['provenance_calls']}", file=sys.stderr)
            return 1
        if run["failures"] or run["result_n"] != n_items:
            print(f"FAIL: {run['failures']} judge failures, {run['result_n']} items scored", file=sys.stderr)
            return 1
    if fixed_calls:
        print(f"FAIL: the warm re-run made {fixed_calls} judge calls", file=sys.stderr)
        return 1

    calls = expected_calls
    sequential = calls * args.latency
    ideal = sequential / args.concurrency
    rounds_floor = math.ceil(calls / args.concurrency) * args.latency  # whole rounds of `concurrency` calls
    walls = [r["wall_s"] for r in runs]
    phases = [r["judge_phase_s"] for r in runs]
    best_wall, med_wall = min(walls), statistics.median(walls)
    best_phase, med_phase = min(phases), statistics.median(phases)
    fixed_s = fixed["wall_s"]
    ceiling = ideal / (rounds_floor + fixed_s)

    def verdict(eff):
        return "met" if eff >= TARGET else "MISSED"

    print(f"SIUO judge throughput: {n_items} items x {_common.N_ANSWERS} answers x 2 judge calls, "
          f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, {len(runs)} cold run(s)")
    print(f"  machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after")
    print(f"  calls made                  {calls} per run (fake server: {runs[0]['server_calls']}, provenance: {runs[0]['provenance_calls']})")
    print(f"  sequential (calls x lat)    {sequential:7.2f} s")
    print(f"  ideal (/ concurrency)       {ideal:7.2f} s   (whole rounds of {args.concurrency}: {rounds_floor:.2f} s)")
    print(f"  {'':27s} {'best':>7s} {'median':>8s}   efficiency best / median (target >= {TARGET})")
    print(f"  wall, whole CLI process     {best_wall:7.2f} {med_wall:8.2f}   {ideal / best_wall:.2f} / {ideal / med_wall:.2f}  "
          f"({verdict(ideal / best_wall)} / {verdict(ideal / med_wall)})")
    print(f"  wall, judge phase only      {best_phase:7.2f} {med_phase:8.2f}   {ideal / best_phase:.2f} / {ideal / med_phase:.2f}  "
          f"({verdict(ideal / best_phase)} / {verdict(ideal / med_phase)})")
    print(f"  fixed cost of a run (same command, warm cache): {fixed_s:.2f} s -> whole-process ceiling with a perfect "
          f"judge phase: {ceiling:.2f}")
    print(f"  judge phase target >= {PHASE_TARGET}: {'met' if ideal / best_phase >= PHASE_TARGET else 'MISSED'} (best), "
          f"{'met' if ideal / med_phase >= PHASE_TARGET else 'MISSED'} (median)")
    lim = limited
    print(f"  rate-limited judge ({args.rate_per_min:g} calls/min, {lim['calls']} calls, concurrency {args.concurrency}): "
          f"ideal {lim['ideal_s']:.2f} s, judge phase {lim['judge_phase_s']:.2f} s -> efficiency {lim['efficiency']:.2f} "
          f"(target >= {RATE_TARGET}: {'met' if lim['efficiency'] >= RATE_TARGET else 'MISSED'}); "
          f"{lim['rejected']} calls refused with 429, {lim['retries']} retries, {lim['waited_s']:.1f} s waited in all")
    print(f"  client CPU per run (median): {statistics.median(r['cpu_s'] for r in runs):.2f} s; "
          "runs (wall / judge phase, s): " + ", ".join(f"{w:.2f}/{p:.2f}" for w, p in zip(walls, phases)))
    _common.emit("judge_throughput", {
        "items": n_items,
        "calls": calls,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "sequential_s": round(sequential, 3),
        "ideal_s": round(ideal, 3),
        "wall_s": {"best": round(best_wall, 3), "median": round(med_wall, 3)},
        "judge_phase_s": {"best": round(best_phase, 3), "median": round(med_phase, 3)},
        "efficiency": {"best": round(ideal / best_wall, 3), "median": round(ideal / med_wall, 3)},
        "efficiency_judge_phase": {"best": round(ideal / best_phase, 3), "median": round(ideal / med_phase, 3)},
        "fixed_s": round(fixed_s, 3),
        "efficiency_ceiling": round(ceiling, 3),
        "target": TARGET,
        "judge_phase_target": PHASE_TARGET,
        "rate_limited": limited,
        "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
        "runs": runs,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
