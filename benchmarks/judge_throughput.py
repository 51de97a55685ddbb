"""Judge throughput of ``siuo score gen`` in the full generation setting, as a ratio to the ideal.

167 items x 3 answers x 2 judge calls (safety + effectiveness) = 1,002 calls, scored by the real
CLI (``python -m siuo_task.cli score gen``, a fresh ``--cache-dir``) against a fake
OpenAI-compatible judge that answers every call after a fixed latency (100 ms by default).

    ideal      = calls x latency / concurrency   (the judge is the only cost, perfectly overlapped)
    efficiency = ideal / wall                     target >= 0.8 at concurrency 32

Two walls are reported: the whole CLI process (Python start-up, imports, data validation,
writing the result included) and the judge phase alone (from the server's first to its last
reply, plus one latency).

    python benchmarks/judge_throughput.py [--latency 0.1] [--concurrency 32] [--repeat 1]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

TARGET = 0.8


class TimedResponder:
    """The fake server's default judge, recording when each reply is produced."""

    def __init__(self):
        from siuo_task.fake_server import default_responder

        self._respond = default_responder
        self._lock = threading.Lock()
        self.times: list[float] = []

    def __call__(self, body: dict) -> str:
        with self._lock:
            self.times.append(time.perf_counter())
        return self._respond(body)

    def reset(self) -> None:
        with self._lock:
            self.times.clear()


def one_run(work: Path, data_dir: Path, responses: Path, server, responder, args, index: int) -> dict:
    cache = work / f"cache-{index}"  # fresh: every call goes to the judge
    calls_before = server.chat_calls
    responder.reset()
    run = _common.score_gen_cli(responses, work / f"result-{index}.json", data_dir, server.url, cache,
                                concurrency=args.concurrency, quiet=args.quiet)
    server_calls = server.chat_calls - calls_before
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


def main(argv=None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="fake judge latency per call, seconds (default 0.1)")
    parser.add_argument("--concurrency", type=int, default=32, help="--concurrency for siuo score gen (default 32)")
    parser.add_argument("--repeat", type=int, default=1, help="cold runs to make; the median is reported (default 1)")
    parser.add_argument("--quiet", action="store_true", help="pass --quiet (no progress bar) to the CLI")
    args = parser.parse_args(argv)

    from siuo_task.fake_server import FakeOpenAIServer

    with _common.work_dir(args) as work:
        data_dir = _common.placeholder_data_dir(work / "data")
        n_items, expected_calls = _common.write_gen_submission(data_dir, work / "responses.json")
        responder = TimedResponder()
        runs = []
        with FakeOpenAIServer(responder=responder, latency_s=args.latency) as server:
            for index in range(args.repeat):
                runs.append(one_run(work, data_dir, responses=work / "responses.json", server=server,
                                    responder=responder, args=args, index=index))

    for run in runs:
        if run["server_calls"] != expected_calls or run["provenance_calls"] != expected_calls:
            print(f"FAIL: expected {expected_calls} judge calls, the server saw {run['server_calls']}, "
                  f"the result's provenance says {run['provenance_calls']}", file=sys.stderr)
            return 1
        if run["failures"] or run["result_n"] != n_items:
            print(f"FAIL: {run['failures']} judge failures, {run['result_n']} items scored", file=sys.stderr)
            return 1

    wall = statistics.median(r["wall_s"] for r in runs)
    phase = statistics.median(r["judge_phase_s"] for r in runs)
    calls = expected_calls
    sequential = calls * args.latency
    ideal = sequential / args.concurrency
    eff_wall = ideal / wall
    eff_phase = ideal / phase

    print(f"SIUO judge throughput: {n_items} items x {_common.N_ANSWERS} answers x 2 judge calls, "
          f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, {len(runs)} cold run(s)")
    print(f"  calls made                {calls} (fake server: {runs[0]['server_calls']}, provenance: {runs[0]['provenance_calls']})")
    print(f"  sequential (calls x lat)  {sequential:8.2f} s")
    print(f"  ideal (/ concurrency)     {ideal:8.2f} s")
    print(f"  wall, whole CLI process   {wall:8.2f} s   efficiency {eff_wall:.2f}  (target >= {TARGET}: {'met' if eff_wall >= TARGET else 'MISSED'})")
    print(f"  wall, judge phase only    {phase:8.2f} s   efficiency {eff_phase:.2f}  (target >= {TARGET}: {'met' if eff_phase >= TARGET else 'MISSED'})")
    print(f"  CLI start-up + data + output (wall - judge phase): {wall - phase:.2f} s; CLI CPU time {runs[0]['cpu_s']:.2f} s")
    if len(runs) > 1:
        print("  runs (wall / judge phase, s): " + ", ".join(f"{r['wall_s']:.2f}/{r['judge_phase_s']:.2f}" for r in runs))
    _common.emit("judge_throughput", {
        "items": n_items,
        "calls": calls,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "sequential_s": round(sequential, 3),
        "ideal_s": round(ideal, 3),
        "wall_s": round(wall, 3),
        "judge_phase_s": round(phase, 3),
        "efficiency": round(eff_wall, 3),
        "efficiency_judge_phase": round(eff_phase, 3),
        "target": TARGET,
        "runs": runs,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
