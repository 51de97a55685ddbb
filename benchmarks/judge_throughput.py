"""Judge throughput of ``siuo score gen`` in the full generation setting, as ratios to the ideal.

167 items x 3 answers x 2 judge calls (safety + effectiveness) = 1,002 calls, scored by the real
CLI (``python -m siuo_task.cli score gen``, a fresh ``--cache-dir``) against a fake
OpenAI-compatible judge that answers every call after a fixed latency.

    ideal      = calls x latency / concurrency   (the judge is the only cost, perfectly overlapped)
    efficiency = ideal / wall

Cases (concurrency 32 unless ``--concurrency``):

1. ``--latency`` (100 ms): the whole CLI process, target >= 0.8; its judge phase beside it.
2. ``--phase-latency`` (500 ms): the judge phase, target >= 0.9 (the client's per-call work on one
   event-loop thread shows at high call rates; at 500 ms it must not).
3. One 429: the same 1,002 calls at ``--one-off-latency`` (300 ms), once clean and once with one
   429 carrying ``Retry-After: --retry-after`` (5 s) at the 300th call. Its cost is the difference
   of the two judge phases: target <= Retry-After + 3 s, printed as a ratio to that bound; the
   result's ``waited_s`` must say the wait.
4. A steady limit: ``--rate-items`` items through a token bucket of ``--rate-per-s`` calls/s holding
   ``--burst`` (full at start; refused calls get 429 with Retry-After and retry-after-ms, as OpenAI
   sends), once with OpenAI's ``x-ratelimit-*`` headers and once without. Every token used as soon
   as it exists: ideal = (calls - burst) / rate + latency; efficiency = ideal / judge phase, target
   >= 0.9; rejected share = 429s / accepted calls, target <= 0.25.

Two walls are reported: the whole CLI process (Python start-up, imports, data validation, writing
the result included) and the judge phase alone (from the server's first to its last reply, plus one
latency). The machine may be shared, and other load only ever adds time, so the best of
``--repeat`` cold runs is printed beside the median. The fixed cost of a run (the same command on
the now-warm cache) gives the whole-process ceiling: ideal / (rounds x latency + fixed). A cold run
also imports the openai SDK before its first call (a warm one never does), and no client can make
the judge phase shorter than the fake server and the loopback network allow: the floor with the SDK
is fixed + the SDK's import (a fresh interpreter, median of three) + the judge phase of a bare
aiohttp client (benchmarks/_bare_client.py) replaying the first cold run's request bodies at the
same concurrency, without preflight, SDK or cache; ideal / floor is the most any cold run can reach.

    python benchmarks/judge_throughput.py [--repeat 3] [--quiet] [--skip-limits]
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

TARGET = 0.8  # whole process, 100 ms
PHASE_TARGET = 0.9  # judge phase, 500 ms
RATE_TARGET = 0.9  # a steady limit: share of the limit used
REJECTED_TARGET = 0.25  # a steady limit: 429s per accepted call
ONE_OFF_SLACK_S = 3.0  # one 429 may cost its Retry-After plus this


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
        self.bodies: list | None = None  # a list: the judging calls' request bodies are kept there

    def __call__(self, body: dict) -> str:
        if self._text(body).startswith(self._preflight):
            return "OK"  # the CLI's preflight check call: before the judge phase
        with self._lock:
            self.times.append(time.perf_counter())
            if self.bodies is not None:
                self.bodies.append(body)
        return self._respond(body)

    def reset(self) -> None:
        with self._lock:
            self.times.clear()


def one_run(work: Path, data_dir: Path, responses: Path, server, responder, args, tag: str, latency: float) -> dict:
    cache = work / f"cache-{tag}"  # fresh: every call goes to the judge
    calls_before = server.judging_calls
    responder.reset()
    run = _common.score_gen_cli(
        responses, work / f"result-{tag}.json", data_dir, server.url, cache, concurrency=args.concurrency, quiet=args.quiet
    )
    usage = run["result"]["provenance"]["judge"]["usage"]
    return {
        "wall_s": run["wall_s"],
        "judge_phase_s": judge_phase(responder.times, latency),
        "server_calls": server.judging_calls - calls_before,
        "provenance_calls": usage["calls"],
        "retries": usage["retries"],
        "waited_s": usage["waited_s"],
        "cache_hits": usage["cache_hits"],
        "failures": usage["failures"],
        "cpu_s": run["cpu_s"],
        "result_n": run["result"]["counts"]["n"],
    }


def check(runs: list, expected_calls: int, n_items: int, retries: int = 0) -> None:
    for run in runs:
        if run["server_calls"] != expected_calls + retries or run["provenance_calls"] != expected_calls + retries:
            raise SystemExit(
                f"FAIL: expected {expected_calls} judge calls (+{retries} retried), the server saw "
                f"{run['server_calls']}, the result's provenance says {run['provenance_calls']}"
            )
        if run["failures"] or run["result_n"] != n_items:
            raise SystemExit(f"FAIL: {run['failures']} judge failures, {run['result_n']} items scored")


def best_median(values: list) -> tuple:
    return min(values), statistics.median(values)


def judge_phase(times: list, latency: float) -> float:
    """From the server's first to its last judging reply, plus one latency."""
    times = sorted(times)
    return (times[-1] - times[0] + latency) if times else 0.0


def sdk_import_s(repeat: int = 3) -> float:
    """Median seconds a fresh interpreter takes to import the openai SDK (what a cold run adds to a warm one)."""
    code = "import time; t = time.perf_counter(); import openai; print(time.perf_counter() - t)"
    runs = [_common.run_child([_common.PYTHON, "-c", code], env=_common.child_env()) for _ in range(repeat)]
    for run in runs:
        if run["rc"] != 0:
            raise SystemExit(f"FAIL: importing the openai SDK failed:\n{run['stderr'][-2000:]}")
    return statistics.median(float(run["stdout"].split()[-1]) for run in runs)


def bare_phase(work: Path, server, responder, bodies: list, args, latency: float) -> float:
    """The judge phase of a bare aiohttp client posting the same bodies (benchmarks/_bare_client.py)."""
    path = work / "bodies.json"
    path.write_text(json.dumps(bodies), encoding="utf-8")
    before = server.judging_calls
    responder.reset()
    run = _common.run_child(
        [_common.PYTHON, str(Path(__file__).with_name("_bare_client.py")), str(path), server.url, str(args.concurrency)],
        env=_common.child_env({"SIUO_JUDGE_API_KEY": "benchmark-key"}),
    )
    if run["rc"] != 0 or server.judging_calls - before != len(bodies):
        raise SystemExit(
            f"FAIL: the bare client's replay: exit {run['rc']}, {server.judging_calls - before} calls\n{run['stderr'][-2000:]}"
        )
    return judge_phase(responder.times, latency)


def cold_runs(work, data_dir, responses, args, latency: float, label: str, n_items: int, calls: int) -> dict:
    responder = TimedResponder()
    with _common.fake_judge(responder=responder, latency_s=latency) as server:
        runs, bodies = [], None
        for i in range(args.repeat):
            responder.bodies = [] if (label == "whole" and i == 0) else None  # the floor replays the first run's calls
            runs.append(one_run(work, data_dir, responses, server, responder, args, f"{label}-{i}", latency))
            if responder.bodies is not None:
                bodies = responder.bodies
        responder.bodies = None
        fixed = bare = None
        if label == "whole":  # the fixed part of a run: the same command on the warm cache
            before = server.judging_calls
            fixed = _common.score_gen_cli(
                responses,
                work / "warm.json",
                data_dir,
                server.url,
                work / f"cache-{label}-0",
                concurrency=args.concurrency,
                quiet=args.quiet,
            )
            if server.judging_calls != before:
                raise SystemExit("FAIL: the warm re-run made judge calls")
            bare = bare_phase(work, server, responder, bodies, args, latency)
    check(runs, calls, n_items)
    return {"runs": runs, "fixed_s": fixed["wall_s"] if fixed else None, "bare_phase_s": bare}


def one_off_case(work, data_dir, responses, args, n_items: int, calls: int) -> dict:
    """The same calls with and without one 429 (Retry-After R) at the 300th call: the 429's cost."""
    latency, r = args.one_off_latency, args.retry_after
    phases = {}
    for label, faults in (("clean", None), ("one-429", [None] * 300 + [{"status": 429, "retry_after": r}])):
        responder = TimedResponder()
        with _common.fake_judge(responder=responder, latency_s=latency, faults=faults) as server:
            run = one_run(work, data_dir, responses, server, responder, args, f"one-off-{label}", latency)
        check([run], calls, n_items, retries=0 if faults is None else 1)
        phases[label] = run
    cost = phases["one-429"]["judge_phase_s"] - phases["clean"]["judge_phase_s"]
    return {
        "latency_s": latency,
        "retry_after_s": r,
        "clean_phase_s": round(phases["clean"]["judge_phase_s"], 3),
        "with_429_phase_s": round(phases["one-429"]["judge_phase_s"], 3),
        "cost_s": round(cost, 3),
        "bound_s": r + ONE_OFF_SLACK_S,
        "cost_over_bound": round(cost / (r + ONE_OFF_SLACK_S), 3),
        "waited_s": phases["one-429"]["waited_s"],
    }


def limited_case(work, data_dir, responses, args, headers: bool) -> dict:
    """The first ``--rate-items`` items through a token bucket of ``--rate-per-s`` calls/s holding ``--burst``."""
    rows = json.loads(responses.read_text(encoding="utf-8"))[: args.rate_items]
    subset = work / "responses-rate.json"
    subset.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    calls = 2 * _common.N_ANSWERS * len(rows)
    responder = TimedResponder()
    tag = "x-ratelimit" if headers else "retry-after-ms"
    with _common.fake_judge(
        responder=responder, latency_s=args.rate_latency, rate_per_min=args.rate_per_s * 60, burst=args.burst, ratelimit_headers=headers
    ) as server:
        run = _common.score_gen_cli(
            subset,
            work / f"result-rate-{tag}.json",
            data_dir,
            server.url,
            work / f"cache-rate-{tag}",
            concurrency=args.concurrency,
            quiet=args.quiet,
        )
        accepted, rejected = server.accepted - 1, server.rejected  # the preflight took one token
    usage = run["result"]["provenance"]["judge"]["usage"]
    if usage["calls"] - usage["retries"] != calls or usage["failures"] or accepted != calls:
        raise SystemExit(f"FAIL: rate-limited case: {usage}, accepted {accepted} of {calls}")
    phase = judge_phase(responder.times, args.rate_latency)
    ideal = (calls - args.burst) / args.rate_per_s + args.rate_latency
    return {
        "headers": tag,
        "calls": calls,
        "rate_per_s": args.rate_per_s,
        "burst": args.burst,
        "ideal_s": round(ideal, 3),
        "judge_phase_s": round(phase, 3),
        "efficiency": round(ideal / phase, 3),
        "accepted": accepted,
        "rejected": rejected,
        "rejected_share": round(rejected / accepted, 3),
        "waited_s": usage["waited_s"],
        "wall_s": round(run["wall_s"], 3),
    }


def verdict(value: float, target: float, below: bool = False) -> str:
    return "met" if (value <= target if below else value >= target) else "MISSED"


def main(argv=None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="case 1 (whole process): fake judge latency per call (default 0.1)")
    parser.add_argument("--phase-latency", type=float, default=0.5, help="case 2 (judge phase): latency (default 0.5)")
    parser.add_argument("--concurrency", type=int, default=32, help="--concurrency for siuo score gen (default 32)")
    parser.add_argument("--repeat", type=int, default=3, help="cold runs per case 1 and 2 (default 3); best and median are reported")
    parser.add_argument("--quiet", action="store_true", help="pass --quiet (no progress bar) to the CLI")
    parser.add_argument("--one-off-latency", type=float, default=0.3, help="case 3 (one 429): latency (default 0.3)")
    parser.add_argument("--retry-after", type=float, default=5.0, help="case 3: the 429's Retry-After, seconds (default 5)")
    parser.add_argument("--rate-per-s", type=float, default=50, help="case 4: calls a second the judge admits (default 50)")
    parser.add_argument("--burst", type=float, default=10, help="case 4: calls the token bucket holds (default 10)")
    parser.add_argument("--rate-items", type=int, default=60, help="case 4: items scored (x 3 answers x 2 calls; default 60)")
    parser.add_argument("--rate-latency", type=float, default=0.1, help="case 4: latency (default 0.1)")
    parser.add_argument("--skip-limits", action="store_true", help="cases 1 and 2 only")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    with _common.work_dir(args) as work:
        data_dir = _common.placeholder_data_dir(work / "data")
        responses = work / "responses.json"
        n_items, calls = _common.write_gen_submission(data_dir, responses)
        whole = cold_runs(work, data_dir, responses, args, args.latency, "whole", n_items, calls)
        phase = cold_runs(work, data_dir, responses, args, args.phase_latency, "phase", n_items, calls)
        one_off = limited = None
        if not args.skip_limits:
            one_off = one_off_case(work, data_dir, responses, args, n_items, calls)
            limited = [limited_case(work, data_dir, responses, args, headers) for headers in (True, False)]
    load_after = os.getloadavg()

    conc = args.concurrency
    ideal = calls * args.latency / conc
    rounds_floor = math.ceil(calls / conc) * args.latency
    walls, phases = [r["wall_s"] for r in whole["runs"]], [r["judge_phase_s"] for r in whole["runs"]]
    best_wall, med_wall = best_median(walls)
    best_phase, med_phase = best_median(phases)
    ceiling = ideal / (rounds_floor + whole["fixed_s"])
    import_s = sdk_import_s()
    floor_s = whole["fixed_s"] + import_s + whole["bare_phase_s"]
    ideal_p = calls * args.phase_latency / conc
    best_p, med_p = best_median([r["judge_phase_s"] for r in phase["runs"]])
    best_pw, med_pw = best_median([r["wall_s"] for r in phase["runs"]])

    print(
        f"SIUO judge throughput: {n_items} items x {_common.N_ANSWERS} answers x 2 judge calls = {calls} calls, "
        f"concurrency {conc}, {args.repeat} cold run(s) per case"
    )
    print(f"  machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after")
    print(f"  {'':44s} {'best':>7s} {'median':>8s}   efficiency best / median")
    print(f"  1. {args.latency * 1000:.0f} ms: ideal {ideal:.2f} s (whole rounds {rounds_floor:.2f} s)")
    print(
        f"     wall, whole CLI process {'':16s} {best_wall:7.2f} {med_wall:8.2f}   {ideal / best_wall:.2f} / {ideal / med_wall:.2f}"
        f"  (target >= {TARGET}: {verdict(ideal / best_wall, TARGET)} / {verdict(ideal / med_wall, TARGET)})"
    )
    print(f"     wall, judge phase only {'':17s} {best_phase:7.2f} {med_phase:8.2f}   {ideal / best_phase:.2f} / {ideal / med_phase:.2f}")
    print(f"     fixed cost of a run (warm cache): {whole['fixed_s']:.2f} s -> whole-process ceiling {ceiling:.2f}")
    print(
        f"     floor with the SDK: warm run {whole['fixed_s']:.2f} s + importing openai {import_s:.2f} s + judge phase of a bare "
        f"aiohttp client replaying the same calls {whole['bare_phase_s']:.2f} s = {floor_s:.2f} s -> ceiling {ideal / floor_s:.2f}"
        f" (no preflight, no per-call client work)"
    )
    print(f"  2. {args.phase_latency * 1000:.0f} ms: ideal {ideal_p:.2f} s")
    print(
        f"     wall, judge phase only {'':17s} {best_p:7.2f} {med_p:8.2f}   {ideal_p / best_p:.2f} / {ideal_p / med_p:.2f}"
        f"  (target >= {PHASE_TARGET}: {verdict(ideal_p / best_p, PHASE_TARGET)} / {verdict(ideal_p / med_p, PHASE_TARGET)})"
    )
    print(f"     wall, whole CLI process {'':16s} {best_pw:7.2f} {med_pw:8.2f}   {ideal_p / best_pw:.2f} / {ideal_p / med_pw:.2f}")
    if one_off:
        o = one_off
        print(
            f"  3. one 429 (Retry-After {o['retry_after_s']:g} s) among {calls} calls at {o['latency_s'] * 1000:.0f} ms: judge phase "
            f"{o['clean_phase_s']:.2f} s clean, {o['with_429_phase_s']:.2f} s with it -> cost {o['cost_s']:.2f} s = "
            f"{o['cost_over_bound']:.2f} of the bound R + {ONE_OFF_SLACK_S:g} s ({verdict(o['cost_over_bound'], 1.0, below=True)}); "
            f"waited_s {o['waited_s']:.2f}"
        )
    for lim in limited or []:
        print(
            f"  4. steady limit {lim['rate_per_s']:g} calls/s, burst {lim['burst']:g} ({lim['headers']}), {lim['calls']} calls: "
            f"efficiency {lim['efficiency']:.2f} (target >= {RATE_TARGET}: {verdict(lim['efficiency'], RATE_TARGET)}); "
            f"rejected {lim['rejected']} / accepted {lim['accepted']} = {lim['rejected_share']:.2f} "
            f"(target <= {REJECTED_TARGET}: {verdict(lim['rejected_share'], REJECTED_TARGET, below=True)}); waited_s {lim['waited_s']:.1f}"
        )
    print(
        f"  client CPU per cold run (median): {statistics.median(r['cpu_s'] for r in whole['runs']):.2f} s at "
        f"{args.latency * 1000:.0f} ms; runs (wall / judge phase, s): " + ", ".join(f"{w:.2f}/{p:.2f}" for w, p in zip(walls, phases))
    )
    _common.emit(
        "judge_throughput",
        {
            "items": n_items,
            "calls": calls,
            "concurrency": conc,
            "whole_process": {
                "latency_s": args.latency,
                "ideal_s": round(ideal, 3),
                "fixed_s": round(whole["fixed_s"], 3),
                "wall_s": {"best": round(best_wall, 3), "median": round(med_wall, 3)},
                "judge_phase_s": {"best": round(best_phase, 3), "median": round(med_phase, 3)},
                "efficiency": {"best": round(ideal / best_wall, 3), "median": round(ideal / med_wall, 3)},
                "efficiency_judge_phase": {"best": round(ideal / best_phase, 3), "median": round(ideal / med_phase, 3)},
                "efficiency_ceiling": round(ceiling, 3),
                "sdk_import_s": round(import_s, 3),
                "bare_client_phase_s": round(whole["bare_phase_s"], 3),
                "floor_with_sdk_s": round(floor_s, 3),
                "efficiency_ceiling_with_sdk": round(ideal / floor_s, 3),
                "target": TARGET,
                "runs": whole["runs"],
            },
            "judge_phase": {
                "latency_s": args.phase_latency,
                "ideal_s": round(ideal_p, 3),
                "judge_phase_s": {"best": round(best_p, 3), "median": round(med_p, 3)},
                "efficiency": {"best": round(ideal_p / best_p, 3), "median": round(ideal_p / med_p, 3)},
                "target": PHASE_TARGET,
                "runs": phase["runs"],
            },
            "one_429": one_off,
            "steady_limit": limited,
            "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
