"""Rate limits, waits and refusals of the judge client (issue: one 429 costs what it asks, a steady
limit is used without hammering it, refusals stop judging).

The pacing rules are checked in virtual time (a discrete-event model of concurrent callers taking
their start slots from the real :class:`Pacer` against a token bucket: deterministic, no wall-clock
assertion); the client is checked against the fake server over real HTTP by counts, never by time.
"""

from __future__ import annotations

import heapq
import math

import pytest
from PIL import Image

from siuo_dev.fake_judge_server import FakeOpenAIServer
from siuo_dev.testing import score_gen_args
from siuo_task.cli import main as siuo_main
from siuo_task.judge import JudgeClient, JudgeConfig, JudgeFatal, JudgeRequest
from siuo_task.judge.pacing import Pacer, limiter_hints, parse_duration, wait_asked

SECRET = "sk-test-limits-SECRET-77"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith(("SIUO_JUDGE", "OPENAI_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def image(tmp_path) -> str:
    p = tmp_path / "img.png"
    Image.new("RGB", (8, 8), "red").save(p)
    return str(p)


def client_for(srv, **kw) -> JudgeClient:
    kw.setdefault("cache_dir", "off")
    kw.setdefault("api_key", SECRET)
    kw.setdefault("model", "fake-judge")
    c = JudgeClient(JudgeConfig(base_url=srv.url, **kw))
    c.backoff_base_s, c.backoff_cap_s = 0.01, 0.05
    return c


# --------------------------------------------------------------------------- the pacing rules, in virtual time


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def simulate(n_calls, concurrency, latency, *, rate=None, burst=None, limit_headers=False, one_off=None, cap=60.0):
    """Judge ``n_calls`` calls with ``concurrency`` callers taking their start slots from the real Pacer.

    The endpoint: a token bucket of ``rate`` calls/s holding ``burst`` (full at start; a refused call
    is answered at once with the time to the next token, as retry-after-ms, and with OpenAI's
    x-ratelimit-*-requests when ``limit_headers``), and/or ``one_off=(k, R)``: the k-th call to arrive
    gets one 429 with Retry-After R. Returns the end time, the calls accepted and refused, and the pacer.
    """
    clock = Clock()
    pacer = Pacer(cap, clock=clock, binding=concurrency)
    events, seq = [], [0]
    state = {"tokens": burst or 0.0, "at": 0.0, "arrivals": 0, "accepted": 0, "rejected": 0, "todo": n_calls, "end": 0.0}

    def push(t, kind, data=None):
        seq[0] += 1
        heapq.heappush(events, (t, seq[0], kind, data))

    def headers_for(tokens):
        if not limit_headers:
            return None
        return {
            "x-ratelimit-limit-requests": str(rate * 60),
            "x-ratelimit-remaining-requests": str(int(tokens)),
            "x-ratelimit-reset-requests": f"{(burst - tokens) / rate * 1000:.0f}ms",
        }

    queue = []  # callers waiting for their start, in order (the Pacer's own queue, modelled)

    def start_attempt():
        queue.append(clock.now)
        release()

    wake = [math.inf]  # the one pending wake-up of the releaser

    def release():  # what Pacer._release does when it wakes
        while queue:
            due = pacer.next_start(clock.now)
            if due > clock.now:
                at = min(due, clock.now + 0.25)
                if at < wake[0]:
                    wake[0] = at
                    push(at, "wake")
                return
            asked = queue.pop(0)
            pacer.started(due if clock.now - due < 0.005 else clock.now, asked, due)
            push(clock.now, "send")

    def next_call():
        if state["todo"] > 0:
            state["todo"] -= 1
            start_attempt()

    for _ in range(concurrency):
        next_call()
    while events:
        t, _, kind, data = heapq.heappop(events)
        clock.now = t
        if kind == "wake":
            if t == wake[0]:
                wake[0] = math.inf
                release()
        elif kind == "send":
            state["arrivals"] += 1
            if one_off and state["arrivals"] == one_off[0]:
                push(t + 0.001, "limited", (float(one_off[1]), None, t))
                continue
            if rate is not None:
                state["tokens"] = min(burst, state["tokens"] + (t - state["at"]) * rate)
                state["at"] = t
                if state["tokens"] < 1.0:
                    push(t + 0.001, "limited", ((1.0 - state["tokens"]) / rate, headers_for(state["tokens"]), t))
                    continue
                state["tokens"] -= 1.0
            push(t + latency, "done", headers_for(state["tokens"]) if rate is not None else None)
        elif kind == "limited":
            wait, headers, started = data
            state["rejected"] += 1
            pacer.hold(wait_asked({**(headers or {}), "retry-after-ms": f"{wait * 1000:.3f}"}, True), True, limiter_hints(headers), started)
            start_attempt()
        else:
            state["accepted"] += 1
            state["end"] = t
            if data:
                pacer.observe(limiter_hints(data))
            next_call()
    return state["end"], state["accepted"], state["rejected"], pacer


@pytest.mark.parametrize("concurrency, latency, retry_after", [(32, 0.3, 5.0), (4, 0.3, 5.0), (64, 0.1, 2.0), (32, 0.3, 0.5)])
def test_one_429_costs_what_it_asks(concurrency, latency, retry_after):
    calls = 1000
    free, *_ = simulate(calls, concurrency, latency)
    limited, accepted, rejected, pacer = simulate(calls, concurrency, latency, one_off=(300, retry_after))
    assert accepted == calls and rejected == 1
    assert limited - free <= retry_after + 3.0, (free, limited)
    assert pacer.interval == 0.0  # nothing lingers after the wait
    if retry_after >= 1:  # a window's reset: only the wait itself
        assert pacer.waited_s == pytest.approx(retry_after)  # what was really waited
    else:  # a token's wait: the calls after it were spaced a little while, and that counts as waited too
        assert retry_after < pacer.waited_s <= retry_after + 3.0


@pytest.mark.parametrize("headers", [True, False], ids=["x-ratelimit", "retry-after-ms-only"])
@pytest.mark.parametrize(
    "rate, burst, concurrency, latency", [(50, 10, 32, 0.1), (50, 10, 32, 0.5), (10, 10, 16, 0.3), (200, 20, 32, 0.05)]
)
def test_a_steady_limit_is_used_without_hammering_it(rate, burst, concurrency, latency, headers):
    calls = min(20 * rate, 2000)  # 10 to 20 s of the limit
    end, accepted, rejected, pacer = simulate(calls, concurrency, latency, rate=rate, burst=burst, limit_headers=headers)
    ideal = (calls - burst) / rate + latency  # every token used as soon as it exists
    assert accepted == calls
    assert ideal / end >= 0.9, (ideal, end)
    assert rejected <= accepted / 4, (rejected, accepted)


def test_pacer_waits_are_a_union_not_a_sum():
    clock = Clock()
    pacer = Pacer(60.0, clock=clock)
    pacer.hold(5.0)  # one Retry-After: every call start waits for it
    assert pacer.next_start(0.0) == 5.0
    clock.now = 2.0
    pacer.hold(5.0)  # another call's 429 two seconds later: the wait now ends at 7
    assert pacer.waited_s == pytest.approx(7.0) and pacer.gate == pytest.approx(7.0)
    clock.now = 8.0
    assert pacer.slot() == 0.0 and pacer.interval == 0.0
    pacer.hold(120.0)  # capped
    assert pacer.gate == pytest.approx(68.0) and pacer.waited_s == pytest.approx(67.0)


def test_pacer_paces_only_a_steady_limit_and_lets_go():
    clock = Clock()
    pacer = Pacer(60.0, clock=clock, binding=8)
    pacer.hold(2.0, True, {}, started=0.0)  # a wait of seconds (a window's reset): held, nothing paced
    assert pacer.interval == 0.0 and pacer.next_start(0.0) == 2.0
    clock.now = 3.0
    pacer.hold(0.02, True, {}, started=1.0)  # a first short wait, for a call in flight during the last one
    assert pacer.interval == pytest.approx(0.02) and pacer.tentative  # tentative: released calls spaced by it
    clock.now = 3.5
    assert pacer.next_start(3.5) < 3.5 and pacer.interval == pytest.approx(0.005)  # halved each quarter second
    clock.now = 6.0
    pacer.next_start(6.0)
    assert pacer.interval == 0.0 and not pacer.tentative  # no other 429: gone
    pacer.hold(0.02, True, {}, started=5.0)
    clock.now = 6.05
    pacer.hold(0.02, True, {}, started=6.03)  # started after that wait had ended, refused again: a steady limit
    assert pacer.interval == pytest.approx(0.022) and not pacer.tentative  # 10% wider, at least the wait
    clock.now = 6.05 + 10.5  # ten seconds without a 429: 10% narrower each
    pacer.next_start(clock.now)
    assert pacer.interval == pytest.approx(0.022 * 0.9**10)
    clock.now += 30
    pacer.next_start(clock.now)
    assert pacer.interval == 0.0  # under a millisecond: gone
    # a stated per-minute limit paces 1% under it while little remains, and lets go when more remains
    pacer.observe(limiter_hints({"x-ratelimit-limit-requests": "3000", "x-ratelimit-remaining-requests": "3"}))
    assert pacer.interval == pytest.approx(0.02 * 1.01) and pacer.by_limit
    pacer.observe(limiter_hints({"x-ratelimit-limit-requests": "3000", "x-ratelimit-remaining-requests": "2000"}))
    assert pacer.interval == 0.0


def test_rate_limit_headers_are_read():
    assert parse_duration("20ms") == pytest.approx(0.02) and parse_duration("1.5s") == 1.5
    assert parse_duration("6m0s") == 360.0 and parse_duration("1h2m3s") == 3723.0 and parse_duration("7") == 7.0
    assert parse_duration("soon") is None and parse_duration("") is None and parse_duration(None) is None
    hints = limiter_hints(
        {
            "x-ratelimit-limit-requests": "600",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "100ms",
            "x-ratelimit-reset-tokens": "2s",
        }
    )
    assert hints == {"interval": 0.1, "remaining": 0.0, "reset": 2.0}
    assert wait_asked({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert wait_asked({"x-ratelimit-reset-requests": "3s"}, rate_limited=True) == 3.0
    assert wait_asked({"x-ratelimit-reset-requests": "3s"}) is None  # only a 429 is read so


# --------------------------------------------------------------------------- the client, over real HTTP


def test_one_429_against_the_fake_server_waits_once_and_leaves_nothing(image):
    reqs = [JudgeRequest(f"k{i}", f"p{i}", image) for i in range(40)]
    faults = [None] * 10 + [{"status": 429, "retry_after": 1}]
    with FakeOpenAIServer(faults=faults, latency_s=0.01) as srv:
        with client_for(srv, concurrency=16) as c:
            out = c.run(reqs, progress=False)
            pacer = c._caller.pacer
    assert all(r.text for r in out.values()) and srv.chat_calls == 41 and c.stats.retries == 1
    assert pacer.interval == 0.0 and c.stats.waited_s == pytest.approx(1.0)
    assert c.provenance()["usage"]["waited_s"] == pytest.approx(1.0)


@pytest.mark.parametrize("headers", [True, False], ids=["x-ratelimit", "retry-after-ms-only"])
def test_a_steady_limit_of_the_fake_server_gets_few_rejected_calls(image, headers):
    """200 calls/s through a bucket of 10 (as a provider's limiter), 32 calls in flight: the refused
    calls stay under a quarter of the accepted ones (counts, not times)."""
    reqs = [JudgeRequest(f"k{i}", f"p{i}", image) for i in range(160)]
    with FakeOpenAIServer(rate_per_min=12000, burst=10, ratelimit_headers=headers, latency_s=0.05) as srv:
        with client_for(srv, concurrency=32) as c:
            out = c.run(reqs, progress=False)
    assert all(r.text for r in out.values()) and c.stats.failures == 0
    assert srv.accepted == 160 and srv.rejected == c.stats.retries
    assert srv.rejected <= srv.accepted / 4, (srv.rejected, srv.accepted)


def test_the_progress_bar_shows_the_wait_and_what_was_waited(image, capsys):
    with FakeOpenAIServer(faults=[{"status": 429, "retry_after": 1}]) as srv:
        with client_for(srv) as c:
            c.run([JudgeRequest("k", "x", image), JudgeRequest("j", "y", image)], progress=True)
    err = capsys.readouterr().err
    assert "waiting=" in err and "waited=1s" in err


# --------------------------------------------------------------------------- refusals are fatal


def test_refusals_after_the_preflight_stop_judging(image):
    """The preflight is accepted, every real call refused: judging stops within a bounded number of calls."""
    with FakeOpenAIServer(fail_after=(1, 400)) as srv:  # the check call is served, then every call gets 400
        with client_for(srv, concurrency=4) as c:
            c.preflight()
            with pytest.raises(JudgeFatal, match="refused the first 10 requests and accepted none"):
                c.run([JudgeRequest(f"k{i}", f"p{i}", image) for i in range(200)], progress=False)
    assert srv.chat_calls <= 1 + 10 + 4


def test_refusals_in_a_row_stop_judging_after_successes(image):
    faults = [None] * 5 + [{"status": 400}] * 200
    with FakeOpenAIServer(faults=faults) as srv:
        with client_for(srv, concurrency=1) as c:
            with pytest.raises(JudgeFatal, match="refused 10 requests in a row"):
                c.run([JudgeRequest(f"k{i}", f"p{i}", image) for i in range(100)], progress=False)
    assert srv.chat_calls == 15


def test_refusals_between_successes_are_judge_errors_not_fatal(image):
    with FakeOpenAIServer(fault_every=2, periodic_fault={"status": 400}) as srv:
        with client_for(srv, concurrency=1) as c:
            out = c.run([JudgeRequest(f"k{i}", f"p{i}", image) for i in range(30)], progress=False)
    assert sum(r.text is None for r in out.values()) == 15 and c.stats.failures == 15


def test_score_gen_exits_3_when_the_judge_refuses_every_real_call(data_dir, tmp_path, capsys):
    import json

    from siuo_task.core.data import load_items

    items, _ = load_items("gen", data_dir)
    rows = [{**item, "responses": [f"SAFE answer {i}"]} for i, item in enumerate(items[:40])]
    submission = tmp_path / "s.json"
    submission.write_text(json.dumps(rows))
    with FakeOpenAIServer(fail_after=(1, 400)) as srv:  # the preflight passes, then every call is refused
        code = siuo_main(
            score_gen_args(
                submission, tmp_path / "r.json", data_dir, srv.url, judge_model="fake-judge", cache="off", concurrency=2, quiet=True
            )
        )
        assert srv.chat_calls <= 1 + 10 + 2
    err = capsys.readouterr().err
    assert code == 3 and "refused the first 10 requests" in err and not (tmp_path / "r.json").exists()


def test_bounds_are_finite(monkeypatch):
    for value in ("inf", "nan", "0", "-1", "Infinity"):
        monkeypatch.setenv("SIUO_JUDGE_TIMEOUT", value)
        with pytest.raises(ValueError, match="SIUO_JUDGE_TIMEOUT must be a finite number > 0"):
            JudgeConfig.from_env()
    monkeypatch.setenv("SIUO_JUDGE_TIMEOUT", "30")
    monkeypatch.setenv("SIUO_JUDGE_MAX_WAIT", "inf")
    with pytest.raises(ValueError, match="SIUO_JUDGE_MAX_WAIT must be a finite number"):
        JudgeConfig.from_env()
    for field in ("timeout_s", "retry_after_cap_s", "max_wait_s"):
        with pytest.raises(ValueError, match=f"{field} must be a finite number"):
            JudgeConfig(**{field: math.inf})
