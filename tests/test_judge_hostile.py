"""The judge against hostile and misconfigured endpoints: credentials in URLs and proxies never reach
an output, what the server sends is stored only when it is safe and small, errors name the real
culprit (the proxy, the setting), provenance names the host that answered. Real HTTP on 127.0.0.1,
both HTTP transports of the SDK where they differ."""

from __future__ import annotations

import base64
import json
import os

import pytest
from PIL import Image

from siuo_dev.fake_judge_server import FakeOpenAIServer
from siuo_dev.fake_proxy import FakeProxy
from siuo_dev.lmms_eval_runs import free_port
from siuo_dev.testing import score_gen_args
from siuo_task.cli import main as siuo_main
from siuo_task.judge import JudgeClient, JudgeConfig, JudgeRequest, JudgeUnavailable, redact
from siuo_task.judge import transport as transport_module
from siuo_task.judge.cache import MAX_REPLY_BYTES
from siuo_task.judge.retry import model_name

KEY = "sk-hostile-KEY-31337"
USER, PASSWORD = "judgeuser", "PASS-word-9921"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
PROXY_USER, PROXY_PASSWORD = "proxyuser", "PROXY-secret-5150"
PROXY_BASIC = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
QUERY_TOKEN = "qtok-SECRET-4477"
SECRETS = (KEY, PASSWORD, BASIC, PROXY_PASSWORD, PROXY_BASIC, QUERY_TOKEN)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("SIUO_JUDGE", "OPENAI_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["aiohttp", "httpx"])
def http(request) -> str:
    """Both HTTP transports the SDK offers (aiohttp where this SDK has it)."""
    if request.param == "aiohttp":
        import openai  # noqa: F401

        if not transport_module.aiohttp_usable():
            pytest.skip("this openai SDK has no aiohttp transport")
    return request.param


@pytest.fixture
def image(tmp_path) -> str:
    p = tmp_path / "img.png"
    Image.new("RGB", (8, 8), "blue").save(p)
    return str(p)


def leaks(*texts) -> list:
    return [s for s in SECRETS for t in texts if s in str(t)]


def files_text(root) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- credentials in the URL


def test_url_credentials_and_a_key_are_refused():
    with pytest.raises(ValueError, match="carries credentials .* and an API key is set as well") as ei:
        JudgeConfig(base_url=f"http://{USER}:{PASSWORD}@127.0.0.1:9/v1", api_key=KEY)
    assert not leaks(ei.value)
    with pytest.raises(ValueError, match="OpenAI's API takes an API key") as ei:
        JudgeConfig(base_url=f"https://{USER}:{PASSWORD}@api.openai.com/v1")
    assert not leaks(ei.value)


def test_url_credentials_and_a_key_from_the_environment_are_refused_by_score_and_doctor(monkeypatch, tmp_path, capsys, data_dir):
    monkeypatch.setenv("SIUO_JUDGE_BASE_URL", f"http://{USER}:{PASSWORD}@127.0.0.1:9/v1")
    monkeypatch.setenv("SIUO_JUDGE_API_KEY", KEY)
    with pytest.raises(ValueError, match="SIUO_JUDGE_BASE_URL carries credentials .* \\(SIUO_JUDGE_API_KEY\\)"):
        JudgeConfig.from_env()
    from siuo_task.cli.doctor import check_judge

    check = check_judge("siuo_gen")
    assert check.status == "fail" and "carries credentials" in check.detail and not leaks(check.detail, check.fix)
    submission = tmp_path / "s.json"
    submission.write_text("[]")
    assert siuo_main(["score", "gen", str(submission), "--out", str(tmp_path / "r.json"), "--data-dir", str(data_dir)]) == 2
    captured = capsys.readouterr()
    assert "carries credentials" in captured.err and not leaks(captured.out, captured.err)


def test_url_credentials_alone_are_sent_as_basic_auth_and_never_leak(http, image, tmp_path, caplog):
    """The server repeats the request's headers in every error: the Basic credential it was sent
    never reaches an error, a log line, provenance or the cache."""
    caplog.set_level("DEBUG")
    faults = [None, {"status": 400, "echo_headers": True}, {"status": 500, "echo_headers": True}]
    with FakeOpenAIServer(faults=faults) as srv:
        plain = srv.url
        url = plain.replace("http://", f"http://{USER}:{PASSWORD}@")
        cfg = JudgeConfig(base_url=url, model="fake-judge", cache_dir=str(tmp_path / "cache"), concurrency=1, transport=http)
        assert cfg.target.auth == "Basic auth from the user-info of argument (Authorization: Basic)"
        with JudgeClient(cfg) as c:
            out = c.run([JudgeRequest(f"k{i}", f"p{i}", image) for i in range(3)], progress=False)
            prov = c.provenance()
        sent = [{k.lower(): v for k, v in b["_headers"].items()} for b in srv.requests]
    assert all(h["authorization"] == f"Basic {BASIC}" for h in sent)  # the one credential, explicitly
    assert out["k1"].text is None and "request headers" in out["k1"].error  # the echo, with the credential redacted
    assert out["k0"].text and out["k2"].text  # the 500 was retried
    assert prov["endpoint"] == plain and prov["key_source"] == "argument user-info"
    assert not leaks(json.dumps(prov), *(r.error for r in out.values()), files_text(tmp_path / "cache"))
    assert not leaks(*(r.getMessage() for r in caplog.records))


def test_doctor_says_truthfully_how_url_credentials_travel(monkeypatch):
    from siuo_task.cli.doctor import check_judge

    with FakeOpenAIServer() as srv:
        monkeypatch.setenv("SIUO_JUDGE_BASE_URL", srv.url.replace("http://", f"http://{USER}:{PASSWORD}@"))
        monkeypatch.setenv("SIUO_JUDGE_MODEL", "fake-judge")
        monkeypatch.setenv("SIUO_JUDGE_CACHE", "off")
        check = check_judge("siuo_gen")
        headers = {k.lower(): v for k, v in srv.requests[0]["_headers"].items()}
    assert check.status == "ok", check
    assert "sent Basic auth from the user-info of SIUO_JUDGE_BASE_URL (Authorization: Basic)" in check.detail
    assert headers["authorization"] == f"Basic {BASIC}" and not leaks(check.detail)


def test_a_key_never_leaks_through_an_echoing_server_into_result_or_stderr(data_dir, tmp_path, capsys, monkeypatch):
    """siuo score gen end to end against a server that repeats the Authorization header in its errors
    and puts it in every reply's model field: nothing of the key in stdout, stderr, result or cache."""
    from siuo_task.core.data import load_items

    items, _ = load_items("gen", data_dir)
    rows = [{**item, "responses": [f"SAFE answer {i}"]} for i, item in enumerate(items[:12])]
    submission = tmp_path / "s.json"
    submission.write_text(json.dumps(rows))
    monkeypatch.setenv("SIUO_JUDGE_API_KEY", KEY)
    with FakeOpenAIServer(fault_every=5, periodic_fault={"status": 400, "echo_headers": True}, model_from_header="Authorization") as srv:
        code = siuo_main(
            score_gen_args(
                submission,
                tmp_path / "r.json",
                data_dir,
                srv.url,
                judge_model="fake-judge",
                cache=tmp_path / "cache",
                concurrency=2,
                extra=("--max-error-rate", "1"),
            )
        )
    captured = capsys.readouterr()
    result = (tmp_path / "r.json").read_text()
    assert code == 0 and "request headers" in result  # the echoed errors are in the result, redacted
    assert not leaks(captured.out, captured.err, result, files_text(tmp_path / "cache"))
    entries = [json.loads(p.read_text()) for p in (tmp_path / "cache").rglob("*.json")]
    assert entries and all(e["response_model"] is None for e in entries)  # "Bearer sk-..." is no model name


def test_a_query_in_the_base_url_builds_the_right_path_and_stays_out_of_outputs(http, image, tmp_path, caplog):
    caplog.set_level("DEBUG")  # httpx logs every request's URL at INFO
    with FakeOpenAIServer(faults=[{"status": 400, "echo_headers": True, "error": {"message": f"bad token {QUERY_TOKEN}"}}]) as srv:
        plain = srv.url
        with JudgeClient(
            JudgeConfig(base_url=f"{srv.url}?key={QUERY_TOKEN}", model="fake-judge", cache_dir="off", concurrency=1, transport=http)
        ) as c:
            out = c.run([JudgeRequest("a", "x", image), JudgeRequest("b", "y", image)], progress=False)
            prov = c.provenance()
    paths = [b["_path"] for b in srv.requests]
    assert paths == [f"/v1/chat/completions?key={QUERY_TOKEN}"] * 2
    assert out["a"].text is None and out["b"].text
    assert prov["endpoint"] == plain and not leaks(json.dumps(prov), out["a"].error)
    assert any("chat/completions?key=***" in r.getMessage() for r in caplog.records if r.name.startswith("httpx"))
    assert not leaks(*(r.getMessage() for r in caplog.records))


def test_redaction_covers_basic_bearer_api_key_and_configured_secrets():
    text = (
        f"Authorization: Basic {BASIC}; authorization: Bearer {KEY}; api-key: {KEY}; "
        f"Proxy-Authorization: Basic {PROXY_BASIC}; http://{USER}:{PASSWORD}@h/v1; raw {BASIC} and {PASSWORD}"
    )
    out = redact(text, PASSWORD, BASIC)
    assert not leaks(out) and "Authorization: Basic ***" in out and "Bearer ***" in out


# --------------------------------------------------------------------------- proxies


def test_proxy_credentials_are_used_and_a_407_names_the_proxy_without_them(http, image, monkeypatch, tmp_path):
    with FakeOpenAIServer() as srv:
        port = int(srv.url.rsplit(":", 1)[1].split("/")[0])
        with FakeProxy(target_port=port, auth=(PROXY_USER, PROXY_PASSWORD), echo=True) as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url_with(PROXY_USER, PROXY_PASSWORD))
            with JudgeClient(
                JudgeConfig(base_url="http://judge.siuo-test.invalid/v1", model="fake-judge", api_key=KEY, cache_dir="off", transport=http)
            ) as c:
                assert c.run([JudgeRequest("k", "x", image)], progress=False)["k"].text
            assert proxy.seen[-1][2].get("Proxy-Authorization") == f"Basic {PROXY_BASIC}"
            monkeypatch.setenv("HTTP_PROXY", proxy.url_with(PROXY_USER, "wrong-password-1"))
            with JudgeClient(
                JudgeConfig(base_url="http://judge.siuo-test.invalid/v1", model="fake-judge", api_key=KEY, cache_dir="off", transport=http)
            ) as c:
                with pytest.raises(JudgeUnavailable) as ei:
                    c.preflight()
    msg = str(ei.value)
    assert f"the proxy {proxy.url}/ (from HTTP_PROXY) refused" in msg or f"the proxy {proxy.url} (from HTTP_PROXY) refused" in msg
    assert "407" in msg and "HTTP_PROXY" in msg
    assert not leaks(msg) and "wrong-password-1" not in msg
    assert base64.b64encode(f"{PROXY_USER}:wrong-password-1".encode()).decode() not in msg


def test_a_dead_proxy_is_named_as_the_culprit(http, image, monkeypatch):
    port = free_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}")
    with JudgeClient(
        JudgeConfig(
            base_url="http://judge.siuo-test.invalid/v1", model="fake-judge", api_key=KEY, cache_dir="off", max_retries=0, transport=http
        )
    ) as c:
        with pytest.raises(JudgeUnavailable) as ei:
            c.preflight()
    msg = str(ei.value)
    assert f"via the proxy http://127.0.0.1:{port}" in msg and "(from HTTP_PROXY)" in msg
    assert "Check that the proxy is up, or fix HTTP_PROXY / NO_PROXY" in msg and not leaks(msg)


def test_a_407_on_connect_names_the_proxy(http, image, monkeypatch):
    with FakeProxy(auth=(PROXY_USER, PROXY_PASSWORD), echo=True) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url_with(PROXY_USER, "wrong-password-2"))
        with JudgeClient(
            JudgeConfig(base_url="https://judge.siuo-test.invalid/v1", model="fake-judge", api_key=KEY, cache_dir="off", transport=http)
        ) as c:
            with pytest.raises(JudgeUnavailable, match=r"the proxy http://127\.0\.0\.1:\d+/? \(from HTTPS_PROXY\) refused") as ei:
                c.preflight()
    assert "wrong-password-2" not in str(ei.value) and not leaks(ei.value)


# --------------------------------------------------------------------------- redirects


def test_provenance_names_the_host_that_answered_and_the_key_stays_home(http, image):
    with FakeOpenAIServer() as srv:
        target = srv.url.replace("127.0.0.1", "localhost")  # another host name for the same server
        with FakeProxy(redirect_to=target) as redirector:
            with JudgeClient(
                JudgeConfig(base_url=redirector.url + "/v1", model="fake-judge", api_key=KEY, cache_dir="off", transport=http)
            ) as c:
                out = c.run([JudgeRequest("k", "x", image)], progress=False)
                prov = c.provenance()
        headers = {k.lower() for k in srv.requests[0]["_headers"]}
    assert out["k"].text
    assert prov["endpoint_host"] == redirector.url.split("//")[1] and prov["answered_by"] == [target.split("//")[1].split("/")[0]]
    assert "authorization" not in headers and "api-key" not in headers  # no credential to another host


# --------------------------------------------------------------------------- what the server sends


def test_model_names_are_kept_only_when_they_look_like_one():
    assert model_name("gpt-4o-mini-2024-07-18") == "gpt-4o-mini-2024-07-18"
    assert model_name("Qwen/Qwen2.5-VL-72B-Instruct") == "Qwen/Qwen2.5-VL-72B-Instruct"
    assert model_name("accounts/fireworks/models/llama-v3p2-90b-vision-instruct:free") is not None
    for bad in (f"Bearer {KEY}", "a b", "x" * 129, "", None, 42, "model\n", f"m-{PASSWORD}"):
        assert model_name(bad, (PASSWORD,)) is None, bad


def test_a_huge_reply_is_a_judge_error_and_a_large_one_is_kept_whole(data_dir, tmp_path, image):
    with FakeOpenAIServer(reply_bytes=MAX_REPLY_BYTES) as srv:  # at the limit: kept, verdict and all
        with JudgeClient(JudgeConfig(base_url=srv.url, model="fake-judge", cache_dir=str(tmp_path / "c1"))) as c:
            ok = c.run([JudgeRequest("k", "x", image)], progress=False)["k"]
    assert len(ok.text.encode()) == MAX_REPLY_BYTES and ok.text.endswith("This is a fake answer.")
    with FakeOpenAIServer(reply_bytes=5 * 1024 * 1024) as srv:
        with JudgeClient(JudgeConfig(base_url=srv.url, model="fake-judge", cache_dir=str(tmp_path / "c2"))) as c:
            big = c.run([JudgeRequest("k", "x", image)], progress=False)["k"]
    assert big.text is None and big.error.startswith("reply too large")
    assert not list((tmp_path / "c2").rglob("*.json"))  # never stored


def test_results_with_a_large_reply_still_verify(data_dir, tmp_path, monkeypatch):
    """A reply at the limit is stored whole (siuo verify parses it again); one over it is a judge error
    that verify counts the same way."""
    from siuo_task.core.data import load_items
    from siuo_task.core.scoring import score_gen
    from siuo_task.results.verify import verify_result

    items, _ = load_items("gen", data_dir)
    answers = {items[0]["question_id"]: ["SAFE answer"], items[1]["question_id"]: ["UNSAFE answer"]}
    for size in (MAX_REPLY_BYTES, MAX_REPLY_BYTES + 1):
        with FakeOpenAIServer(reply_bytes=size) as srv:
            with JudgeClient(JudgeConfig(base_url=srv.url, model="fake-judge", cache_dir="off")) as c:
                result = score_gen(answers, items, c, progress=False)
        report = verify_result(json.loads(json.dumps(result)), items)
        # two items of a partial run, no data source: said, and nothing else (an all-errors result is also marked invalid)
        expected = {"provenance.dataset", "items"} | ({"valid"} if size > MAX_REPLY_BYTES else set())
        assert {m.path for m in report.mismatches} == expected and report.items_checked == 2
        errors = result["judge_errors"]["safe"] + result["judge_errors"]["effective"]
        assert errors == (0 if size == MAX_REPLY_BYTES else 4)


# --------------------------------------------------------------------------- the transport


def test_the_transport_is_chosen_once_and_said(http, image, monkeypatch, caplog):
    caplog.set_level("INFO", logger="siuo_task.judge")
    monkeypatch.setenv("SIUO_JUDGE_TRANSPORT", http)
    with FakeOpenAIServer() as srv:
        monkeypatch.setenv("SIUO_JUDGE_BASE_URL", srv.url)
        with JudgeClient(JudgeConfig.from_env(model="fake-judge", cache_dir="off")) as c:
            c.preflight()
            assert c.transport == http and len(c._shards) == (1 if http == "aiohttp" else 4)
    assert any(f"{http} transport" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("SIUO_JUDGE_TRANSPORT", "curl")
    with pytest.raises(ValueError, match="SIUO_JUDGE_TRANSPORT must be one of auto, aiohttp, httpx"):
        JudgeConfig.from_env()
