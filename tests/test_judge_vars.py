"""The judge's settings come from ``SIUO_JUDGE_*`` first, then lmms-eval's own judge variables
(``API_TYPE``, ``MODEL_VERSION``, ``OPENAI_API_URL`` + ``OPENAI_API_KEY``, ``AZURE_ENDPOINT`` +
``AZURE_API_KEY`` + ``API_VERSION``, ``LLM_JUDGE_URL``; the ``.env`` file lmms-eval's judge loads),
then the defaults. Each key goes only to the endpoint the user paired it with, in the header its API
expects; the doctor, the preflight's log line and ``provenance.judge`` name the variables used, never
a key; a judge other than the one lmms-eval's variables name is warned about before generation.
"""

import json
import os

import pytest

from siuo_dev.fake_judge_server import FakeOpenAIServer
from siuo_task.core import schema
from siuo_task.harnesses.call import HarnessCall
from siuo_task.harnesses.session import ScoringSession
from siuo_task.judge import JudgeClient, JudgeConfig, JudgeRequest, host_vars
from siuo_task.judge.config import DEFAULT_BASE_URL, DEFAULT_JUDGE_MODEL

OPENAI_KEY = "sk-lmms-OPENAI-key-1111"
AZURE_KEY = "azure-lmms-KEY-2222"
SIUO_KEY = "sk-siuo-OWN-key-3333"
KEYS = (OPENAI_KEY, AZURE_KEY, SIUO_KEY)
LMMS_EVAL_DOTENV = host_vars.lmms_eval_dotenv  # the real one (the fixture below replaces it)


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    """No judge setting from the caller's environment, and a working folder without a .env file."""
    for name in list(os.environ):
        if name.startswith(("SIUO_", "OPENAI_", "AZURE_")) or name in host_vars.VARIABLES or "PROXY" in name.upper():
            monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(host_vars, "lmms_eval_dotenv", lambda: None)  # lmms-eval's second .env candidate: none here
    monkeypatch.setenv("SIUO_JUDGE_CACHE", "off")
    return monkeypatch


@pytest.fixture
def image(tmp_path):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.new("RGB", (8, 8), "red").save(path)
    return str(path)


def headers_of(body) -> dict:
    return {k.lower(): v for k, v in body["_headers"].items()}


def no_key_in(*texts):
    for text in texts:
        for key in KEYS:
            assert key not in text


def judge_once(config, image, key="k"):
    with JudgeClient(config) as client:
        client.preflight()
        out = client.run([JudgeRequest(key, "x", image)], progress=False)
        prov = client.provenance()
    assert out[key].text is not None, out[key].error
    return prov


# ------------------------------------------------------------------------------------ which settings win


def test_nothing_set_gives_the_defaults(env):
    cfg = JudgeConfig.from_env()
    assert (cfg.model, cfg.base_url, cfg.api_key) == (DEFAULT_JUDGE_MODEL, DEFAULT_BASE_URL, None)
    assert cfg.settings == {"model": "default", "base_url": "default", "api_key": None, "api_version": None}
    assert cfg.lmms_eval_judge is None and cfg.differs_from_lmms_eval() is None


def test_openai_api_key_alone_still_goes_to_openai(env):
    env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    cfg = JudgeConfig.from_env()
    assert cfg.base_url == DEFAULT_BASE_URL and cfg.api_key == OPENAI_KEY and cfg.key_source == "OPENAI_API_KEY"
    assert cfg.lmms_eval_judge is None  # the SDK's own key names no lmms-eval judge: nothing to compare


@pytest.mark.parametrize("suffix", ["", "/", "/chat/completions"])
def test_lmms_eval_openai_variables_alone(env, suffix):
    """OPENAI_API_URL is a base URL (lmms-eval's llm_judge hands it to the SDK); the full
    .../chat/completions URL lmms-eval's older tasks post to is read as the same endpoint."""
    env.setenv("OPENAI_API_URL", "http://judge.example:8000/v1" + suffix)
    env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    env.setenv("MODEL_VERSION", "qwen-vl-judge")
    cfg = JudgeConfig.from_env()
    assert cfg.base_url == "http://judge.example:8000/v1" and cfg.target.url == "http://judge.example:8000/v1"
    assert cfg.model == "qwen-vl-judge" and cfg.api_key == OPENAI_KEY
    assert cfg.settings == {"model": "MODEL_VERSION", "base_url": "OPENAI_API_URL", "api_key": "OPENAI_API_KEY", "api_version": None}
    assert cfg.target.auth == "the key from OPENAI_API_KEY in Authorization: Bearer"
    assert cfg.differs_from_lmms_eval() is None  # SIUO uses exactly lmms-eval's judge


def test_api_type_is_read_as_lmms_eval_reads_it(env):
    env.setenv("OPENAI_API_URL", "http://judge.example:8000/v1")
    for value in ("openai", "OpenAI", " async_openai "):
        env.setenv("API_TYPE", value)
        assert JudgeConfig.from_env().settings["base_url"] == "OPENAI_API_URL"


def test_siuo_variables_win_setting_by_setting(env):
    env.setenv("OPENAI_API_URL", "http://judge.example:8000/v1")
    env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    env.setenv("MODEL_VERSION", "qwen-vl-judge")
    env.setenv("SIUO_JUDGE_MODEL", "my-judge")
    cfg = JudgeConfig.from_env()
    assert (cfg.model, cfg.base_url) == ("my-judge", "http://judge.example:8000/v1")
    assert cfg.settings["model"] == "SIUO_JUDGE_MODEL" and cfg.settings["base_url"] == "OPENAI_API_URL"
    env.setenv("SIUO_JUDGE_BASE_URL", "http://other.example:9000/v1")
    cfg = JudgeConfig.from_env()
    assert cfg.base_url == "http://other.example:9000/v1" and cfg.settings["base_url"] == "SIUO_JUDGE_BASE_URL"
    assert cfg.api_key is None  # OPENAI_API_KEY belongs to OPENAI_API_URL, not to this endpoint
    env.setenv("SIUO_JUDGE_API_KEY", SIUO_KEY)
    cfg = JudgeConfig.from_env()
    assert cfg.api_key == SIUO_KEY and cfg.key_source == "SIUO_JUDGE_API_KEY"


def test_siuo_judge_api_key_alone_keeps_naming_the_default_endpoint(env):
    """SIUO_JUDGE_API_KEY without SIUO_JUDGE_BASE_URL has always meant OpenAI's API: lmms-eval's URL
    does not take it elsewhere."""
    env.setenv("SIUO_JUDGE_API_KEY", SIUO_KEY)
    env.setenv("OPENAI_API_URL", "http://judge.example:8000/v1")
    cfg = JudgeConfig.from_env()
    assert cfg.base_url == DEFAULT_BASE_URL and cfg.api_key == SIUO_KEY and cfg.settings["base_url"] == "default"


def test_openai_api_key_is_paired_with_openai_api_url(env):
    """OPENAI_API_KEY goes to OPENAI_API_URL when that is set (also when SIUO_JUDGE_BASE_URL names the
    same endpoint), otherwise only to OpenAI's own API."""
    env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    env.setenv("OPENAI_API_URL", "http://judge.example:8000/v1/")
    env.setenv("SIUO_JUDGE_BASE_URL", "HTTP://Judge.example:8000/v1")
    cfg = JudgeConfig.from_env()
    assert cfg.api_key == OPENAI_KEY and cfg.key_source == "OPENAI_API_KEY"
    env.setenv("SIUO_JUDGE_BASE_URL", "https://api.openai.com/v1")  # paired with the local server: not sent to OpenAI
    cfg = JudgeConfig.from_env()
    assert cfg.api_key is None
    env.setenv("SIUO_JUDGE_BASE_URL", "http://judge.example:8000/v1.evil.example")
    assert JudgeConfig.from_env().api_key is None
    env.delenv("OPENAI_API_URL")
    assert JudgeConfig.from_env().api_key is None  # not OpenAI's API, and the key is OpenAI's
    env.setenv("SIUO_JUDGE_BASE_URL", "https://api.openai.com/v1")
    assert JudgeConfig.from_env().api_key == OPENAI_KEY


def test_azure_variables_as_lmms_eval_reads_them(env):
    """API_TYPE=azure: AZURE_ENDPOINT is the resource (the SDK's azure_endpoint), MODEL_VERSION the
    deployment, API_VERSION the api-version; AZURE_API_KEY goes in the api-key header."""
    env.setenv("API_TYPE", "azure")
    env.setenv("AZURE_ENDPOINT", "https://myres.openai.azure.com/")
    env.setenv("AZURE_API_KEY", AZURE_KEY)
    env.setenv("API_VERSION", "2024-06-01")
    env.setenv("MODEL_VERSION", "gpt4o-deployment")
    env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    cfg = JudgeConfig.from_env()
    t = cfg.target
    assert (t.kind, t.azure_deployments, t.url, t.api_version) == ("azure", True, "https://myres.openai.azure.com/openai", "2024-06-01")
    assert t.api_version_source == "API_VERSION" and t.key == AZURE_KEY and t.auth == "the key from AZURE_API_KEY in the api-key header"
    assert cfg.model == "gpt4o-deployment"
    assert cfg.settings == {
        "model": "MODEL_VERSION",
        "base_url": "AZURE_ENDPOINT",
        "api_key": "AZURE_API_KEY",
        "api_version": "API_VERSION",
    }
    env.setenv("SIUO_JUDGE_AZURE_API_VERSION", "2024-10-21")
    assert JudgeConfig.from_env().target.api_version == "2024-10-21"
    env.delenv("SIUO_JUDGE_AZURE_API_VERSION")
    env.delenv("API_VERSION")  # SIUO's default api-version (GA), not lmms-eval's preview one
    assert JudgeConfig.from_env().target.api_version == "2024-10-21"
    env.setenv("API_TYPE", "async_azure")
    assert JudgeConfig.from_env().target.key == AZURE_KEY
    env.delenv("AZURE_ENDPOINT")
    with pytest.raises(ValueError, match="AZURE_ENDPOINT"):
        JudgeConfig.from_env()
    env.setenv("SIUO_JUDGE_BASE_URL", "http://127.0.0.1:8000/v1")  # SIUO's own endpoint: lmms-eval's is not needed
    assert JudgeConfig.from_env().api_key is None


def test_a_full_azure_url_as_older_lmms_eval_tasks_use_it(env):
    env.setenv("API_TYPE", "azure")
    env.setenv(
        "AZURE_ENDPOINT", "https://myres.openai.azure.com/openai/deployments/judge4o/chat/completions?api-version=2024-05-01-preview"
    )
    env.setenv("AZURE_API_KEY", AZURE_KEY)
    t = JudgeConfig.from_env().target
    assert t.url == "https://myres.openai.azure.com/openai/deployments/judge4o" and t.api_version == "2024-05-01-preview"
    assert t.api_version_source == "base URL" and t.key == AZURE_KEY


def test_azure_api_key_goes_only_under_azure_endpoint(env):
    env.setenv("AZURE_ENDPOINT", "https://myres.openai.azure.com")
    env.setenv("AZURE_API_KEY", AZURE_KEY)
    env.setenv("SIUO_JUDGE_BASE_URL", "https://myres.openai.azure.com/openai/deployments/x")
    assert JudgeConfig.from_env().api_key == AZURE_KEY  # the endpoint the user paired it with
    for other in (
        "https://otherres.openai.azure.com/openai/deployments/x",
        "https://myres.openai.azure.com.evil.example/openai",
        "http://127.0.0.1:8000/v1",
    ):
        env.setenv("SIUO_JUDGE_BASE_URL", other)
        assert JudgeConfig.from_env().api_key is None, other


def test_local_api_type_sends_no_key(env):
    env.setenv("API_TYPE", "local")
    env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    env.setenv("OPENAI_API_URL", "http://127.0.0.1:8000/v1")
    cfg = JudgeConfig.from_env()
    assert cfg.base_url == "http://localhost:8000/v1" and cfg.api_key is None  # lmms-eval's own default LLM_JUDGE_URL
    assert cfg.settings["base_url"] == "API_TYPE=local"
    env.setenv("LLM_JUDGE_URL", "http://127.0.0.1:8000/v1/chat/completions")
    cfg = JudgeConfig.from_env()
    assert cfg.base_url == "http://127.0.0.1:8000/v1" and cfg.api_key is None and cfg.settings["base_url"] == "LLM_JUDGE_URL"


def test_a_judge_siuo_cannot_call_leaves_the_defaults_and_is_named(env):
    env.setenv("API_TYPE", "bedrock")
    env.setenv("MODEL_VERSION", "anthropic.claude-3-5-sonnet")
    env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    cfg = JudgeConfig.from_env()
    assert (cfg.model, cfg.base_url, cfg.api_key) == (DEFAULT_JUDGE_MODEL, DEFAULT_BASE_URL, OPENAI_KEY)
    note = cfg.differs_from_lmms_eval()
    assert "API_TYPE=bedrock" in note and "anthropic.claude-3-5-sonnet" in note and DEFAULT_JUDGE_MODEL in note
    no_key_in(note)


def test_an_unknown_api_type_is_an_error_naming_it(env):
    env.setenv("API_TYPE", "opnai")
    with pytest.raises(ValueError, match=r"API_TYPE='opnai'.*openai.*azure"):
        JudgeConfig.from_env()
    env.setenv("SIUO_JUDGE_BASE_URL", "http://127.0.0.1:8000/v1")
    cfg = JudgeConfig.from_env()  # SIUO's own endpoint is set: lmms-eval's variables are only compared
    assert "opnai" in cfg.differs_from_lmms_eval()


# ------------------------------------------------------------------------------------------------ .env


def test_dotenv_in_the_working_folder_is_read_as_lmms_eval_loads_it(env, tmp_path):
    """The .env lmms-eval 0.7's judge loads (override=False): read, the environment winning, each
    setting marked as coming from it; the process environment is left as it was."""
    (tmp_path / "work" / ".env").write_text(
        f"OPENAI_API_URL=http://judge.example:8000/v1\nOPENAI_API_KEY={OPENAI_KEY}\nMODEL_VERSION=dotenv-judge\nSIUO_JUDGE_CONCURRENCY=3\n"
    )
    before = dict(os.environ)
    cfg = JudgeConfig.from_env()
    assert dict(os.environ) == before
    assert (cfg.base_url, cfg.model, cfg.api_key, cfg.concurrency) == ("http://judge.example:8000/v1", "dotenv-judge", OPENAI_KEY, 3)
    assert cfg.settings == {
        "model": "MODEL_VERSION (.env)",
        "base_url": "OPENAI_API_URL (.env)",
        "api_key": "OPENAI_API_KEY (.env)",
        "api_version": None,
    }
    env.setenv("MODEL_VERSION", "env-judge")
    cfg = JudgeConfig.from_env()
    assert cfg.model == "env-judge" and cfg.settings["model"] == "MODEL_VERSION"
    env.setenv("MODEL_VERSION", "")  # set, even empty: the environment wins (load_dotenv(override=False) keeps it)
    assert JudgeConfig.from_env().model == DEFAULT_JUDGE_MODEL


def test_lmms_eval_second_dotenv_candidate(env, tmp_path):
    other = tmp_path / "lib" / ".env"
    other.parent.mkdir()
    other.write_text("MODEL_VERSION=from-lib\n")
    env.setattr(host_vars, "lmms_eval_dotenv", lambda: other)
    assert JudgeConfig.from_env().model == "from-lib"
    (tmp_path / "work" / ".env").write_text("API_VERSION=2024-06-01\n")  # the first file found is the one read
    assert JudgeConfig.from_env().model == DEFAULT_JUDGE_MODEL


def test_lmms_eval_second_dotenv_candidate_is_where_its_judge_looks():
    pytest.importorskip("lmms_eval")
    from pathlib import Path

    import lmms_eval.llm_judge.factory as factory

    assert LMMS_EVAL_DOTENV() == Path(factory.__file__).resolve().parents[4] / ".env"


# ------------------------------------------------------------------------------- differs from lmms-eval's


def test_differs_names_both_judges_never_a_key(env):
    env.setenv("SIUO_JUDGE_BASE_URL", "http://127.0.0.1:8011/v1")
    env.setenv("SIUO_JUDGE_API_KEY", SIUO_KEY)
    env.setenv("SIUO_JUDGE_MODEL", "siuo-judge")
    env.setenv("MODEL_VERSION", "gpt-4o-2024-11-20")
    env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    cfg = JudgeConfig.from_env()
    note = cfg.differs_from_lmms_eval()
    assert "siuo-judge at 127.0.0.1:8011" in note and "gpt-4o-2024-11-20 at api.openai.com" in note
    assert "SIUO_JUDGE_MODEL" in note and "SIUO_JUDGE_BASE_URL" in note and "MODEL_VERSION" in note
    no_key_in(note, repr(cfg), json.dumps(cfg.settings))
    env.setenv("SIUO_JUDGE_MODEL", "gpt-4o-2024-11-20")  # same model, another endpoint: still another judge
    assert "127.0.0.1:8011" in JudgeConfig.from_env().differs_from_lmms_eval()
    env.setenv("OPENAI_API_URL", "http://127.0.0.1:8011/v1/chat/completions")  # the same judge
    assert JudgeConfig.from_env().differs_from_lmms_eval() is None
    env.delenv("MODEL_VERSION")  # lmms-eval's variables name no model: the endpoint alone decides
    env.setenv("SIUO_JUDGE_MODEL", "anything")
    assert JudgeConfig.from_env().differs_from_lmms_eval() is None


def test_same_host_other_path_is_shown_as_urls(env):
    env.setenv("SIUO_JUDGE_BASE_URL", "http://127.0.0.1:8011/judge/v1")
    env.setenv("OPENAI_API_URL", "http://127.0.0.1:8011/v1")
    note = JudgeConfig.from_env().differs_from_lmms_eval()
    assert "http://127.0.0.1:8011/judge/v1" in note and "http://127.0.0.1:8011/v1" in note


# ------------------------------------------------------------------------- what each endpoint receives


def test_each_endpoint_receives_only_its_own_key(env, image):
    """Real requests to fake servers: OPENAI_API_URL's server gets OPENAI_API_KEY as a bearer token;
    SIUO's own endpoint gets SIUO_JUDGE_API_KEY or no key; an Azure endpoint gets AZURE_API_KEY in
    api-key on the deployments path; no key travels anywhere else, nor into provenance."""
    with FakeOpenAIServer() as lmms, FakeOpenAIServer() as siuo, FakeOpenAIServer() as azure:
        env.setenv("OPENAI_API_URL", lmms.url)
        env.setenv("OPENAI_API_KEY", OPENAI_KEY)
        env.setenv("MODEL_VERSION", "fake-judge")
        env.setenv("AZURE_ENDPOINT", azure.url.rsplit("/v1", 1)[0])
        env.setenv("AZURE_API_KEY", AZURE_KEY)
        env.setenv("API_VERSION", "2024-06-01")
        provs = [judge_once(JudgeConfig.from_env(), image)]  # 1) lmms-eval's openai variables
        assert lmms.chat_calls == 2 and siuo.chat_calls == azure.chat_calls == 0
        for body in lmms.requests:
            hdrs = headers_of(body)
            assert hdrs["authorization"] == f"Bearer {OPENAI_KEY}" and "api-key" not in hdrs and body["model"] == "fake-judge"

        env.setenv("SIUO_JUDGE_BASE_URL", siuo.url)  # 2) SIUO's own endpoint, no key of its own
        provs.append(judge_once(JudgeConfig.from_env(), image))
        assert siuo.chat_calls == 2 and lmms.chat_calls == 2
        for body in siuo.requests:
            hdrs = headers_of(body)
            assert "authorization" not in hdrs and "api-key" not in hdrs
        env.setenv("SIUO_JUDGE_API_KEY", SIUO_KEY)  # 3) ... with its key
        provs.append(judge_once(JudgeConfig.from_env(), image))
        for body in siuo.requests[2:]:
            hdrs = headers_of(body)
            assert hdrs["authorization"] == f"Bearer {SIUO_KEY}" and "api-key" not in hdrs

        for name in ("SIUO_JUDGE_BASE_URL", "SIUO_JUDGE_API_KEY"):
            env.delenv(name)
        env.setenv("API_TYPE", "azure")  # 4) lmms-eval's Azure variables (a local server: the API is Azure's still)
        provs.append(judge_once(JudgeConfig.from_env(), image))
        assert azure.chat_calls == 2 and lmms.chat_calls == 2 and siuo.chat_calls == 4
        for body in azure.requests:
            hdrs = headers_of(body)
            assert hdrs["api-key"] == AZURE_KEY and "authorization" not in hdrs
            assert body["_path"] == "/openai/deployments/fake-judge/chat/completions?api-version=2024-06-01"

        for server, own in ((lmms, OPENAI_KEY), (siuo, SIUO_KEY), (azure, AZURE_KEY)):
            sent = json.dumps(server.requests)
            for key in KEYS:
                if key != own:
                    assert key not in sent, (server.url, key)
    no_key_in(*(json.dumps(p) for p in provs))
    assert [p["settings"]["api_key"] for p in provs] == ["OPENAI_API_KEY", None, "SIUO_JUDGE_API_KEY", "AZURE_API_KEY"]
    assert [p["settings"]["base_url"] for p in provs] == ["OPENAI_API_URL", "SIUO_JUDGE_BASE_URL", "SIUO_JUDGE_BASE_URL", "AZURE_ENDPOINT"]
    assert provs[0]["lmms_eval_judge"]["same"] is True and provs[1]["lmms_eval_judge"]["same"] is False


# --------------------------------------------------------------------- the session: log line and warning


def _session(predict_only=False):
    info, warnings = [], []
    session = ScoringSession(
        schema.GEN_TASK, HarnessCall("lmms-eval", "lmms_eval", predict_only=predict_only), info=info.append, warning=warnings.append
    )
    return session, info, warnings


def test_preflight_names_the_variables_and_warns_when_the_judges_differ(env, data_dir, caplog):
    env.setenv("SIUO_DATA_DIR", str(data_dir))
    with FakeOpenAIServer() as siuo:
        env.setenv("SIUO_JUDGE_BASE_URL", siuo.url)
        env.setenv("SIUO_JUDGE_API_KEY", SIUO_KEY)
        env.setenv("SIUO_JUDGE_MODEL", "fake-judge")
        env.setenv("MODEL_VERSION", "gpt-4o-2024-11-20")
        env.setenv("OPENAI_API_URL", "http://judge.example:8000/v1")
        env.setenv("OPENAI_API_KEY", OPENAI_KEY)
        session, info, warnings = _session()
        session.preflight()
        assert siuo.chat_calls == 1
    [warning] = warnings  # one warning, naming both judges
    assert "fake-judge at 127.0.0.1" in warning and "gpt-4o-2024-11-20 at judge.example:8000" in warning
    [line] = [m for m in info if "answered a check call" in m]
    assert "model from SIUO_JUDGE_MODEL" in line and "URL from SIUO_JUDGE_BASE_URL" in line and "key from SIUO_JUDGE_API_KEY" in line
    no_key_in(warning, *info, caplog.text)
    session, info, warnings = _session(predict_only=True)  # no judge in this run: nothing to warn about
    session.preflight()
    assert warnings == [] and info == []


def test_no_warning_when_siuo_uses_lmms_evals_judge(env, data_dir):
    env.setenv("SIUO_DATA_DIR", str(data_dir))
    with FakeOpenAIServer() as lmms:
        env.setenv("OPENAI_API_URL", lmms.url)
        env.setenv("OPENAI_API_KEY", OPENAI_KEY)
        env.setenv("MODEL_VERSION", "fake-judge")
        session, info, warnings = _session()
        session.preflight()
    assert warnings == []
    [line] = [m for m in info if "answered a check call" in m]
    assert "fake-judge" in line and "URL from OPENAI_API_URL" in line and "key from OPENAI_API_KEY" in line


def test_a_failed_preflight_names_where_the_settings_came_from(env, data_dir):
    """A model name or URL taken from lmms-eval's variables is easy to miss: the error names them."""
    from siuo_task.core.scoring import SIUORunAborted
    from siuo_task.judge import JudgeUnavailable

    env.setenv("SIUO_DATA_DIR", str(data_dir))
    env.setenv("OPENAI_API_URL", "http://127.0.0.1:9/v1")
    env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    env.setenv("MODEL_VERSION", "v3")
    env.setenv("SIUO_JUDGE_MAX_RETRIES", "0")
    config = JudgeConfig.from_env()
    with pytest.raises(JudgeUnavailable) as exc, JudgeClient(config) as client:
        client.preflight()
    message = str(exc.value)
    assert "127.0.0.1:9" in message and "fix OPENAI_API_URL" in message
    assert "model from MODEL_VERSION, URL from OPENAI_API_URL, key from OPENAI_API_KEY" in message
    session, info, warnings = _session()
    with pytest.raises(SIUORunAborted, match="model from MODEL_VERSION"):  # lmms-eval's run stops with it
        session.preflight()
    no_key_in(message)


def test_warning_does_not_need_the_preflight_call(env, data_dir):
    """SIUO_JUDGE_PREFLIGHT=0 skips the check call, not the warning: the run still judges."""
    env.setenv("SIUO_DATA_DIR", str(data_dir))
    env.setenv("SIUO_JUDGE_PREFLIGHT", "0")
    env.setenv("SIUO_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    env.setenv("MODEL_VERSION", "gpt-4o-2024-11-20")
    session, info, warnings = _session()
    session.preflight()
    assert len(warnings) == 1 and "gpt-4o-2024-11-20" in warnings[0]


# ------------------------------------------------------------------------------- the judge's usage sink


def test_usage_sink_gets_each_real_call_never_a_cache_hit(env, image, tmp_path):
    seen = []
    with FakeOpenAIServer() as server:
        cfg = JudgeConfig(base_url=server.url, model="fake-judge", cache_dir=str(tmp_path / "cache"))
        with JudgeClient(cfg, usage_sink=lambda *a: seen.append(a)) as client:
            client.preflight()  # the check call is not part of the judging's usage
            client.run([JudgeRequest("a", "x", image), JudgeRequest("b", "y", image)], progress=False)
            prov = client.provenance()
        assert len(seen) == 2 and {s[0] for s in seen} == {"fake-judge"}
        assert sum(s[1] for s in seen) == prov["usage"]["prompt_tokens"] and sum(s[2] for s in seen) == prov["usage"]["completion_tokens"]
        with JudgeClient(cfg, usage_sink=lambda *a: seen.append(a)) as client:
            client.run([JudgeRequest("a", "x", image)], progress=False)  # from the cache: costs nothing
            assert client.stats.cache_hits == 1
        assert len(seen) == 2


def test_a_failing_usage_sink_never_fails_judging(env, image, caplog):
    def broken(*args):
        raise TypeError("log_usage() got an unexpected keyword argument")

    with FakeOpenAIServer() as server:
        cfg = JudgeConfig(base_url=server.url, model="fake-judge", cache_dir="off")
        with JudgeClient(cfg, usage_sink=broken) as client:
            out = client.run([JudgeRequest("a", "x", image), JudgeRequest("b", "y", image)], progress=False)
    assert all(r.text for r in out.values())
    assert caplog.text.count("usage") >= 1 and "log_usage" in caplog.text


def test_lmms_eval_usage_sink(env):
    """On lmms-eval 0.7.x the judge's calls reach lmms-eval's usage accounting as source "judge",
    under the SIUO task's name (the aggregation runs outside lmms-eval's task context)."""
    from siuo_task.harnesses.lmms_eval.usage import judge_usage_sink

    usage_metrics = pytest.importorskip("lmms_eval.models.model_utils.usage_metrics")
    usage_metrics.reset_usage_metrics()
    try:
        sink = judge_usage_sink(schema.GEN_TASK)
        sink("fake-judge", 100, 7)
        sink("fake-judge", 50, 3)
        summary = usage_metrics.summarize_usage_metrics()
    finally:
        usage_metrics.reset_usage_metrics()
    judge = summary["by_source"]["judge"]
    assert (judge["input_tokens"], judge["output_tokens"], judge["reasoning_tokens"], judge["n_api_calls"]) == (150, 10, 0, 2)
    assert summary["by_task"][schema.GEN_TASK]["total_tokens"] == 160


def test_lmms_eval_usage_sink_without_usage_accounting(monkeypatch):
    """lmms-eval 0.6.x has no usage accounting: no sink, nothing logged, no error."""
    import sys

    from siuo_task.harnesses.lmms_eval.usage import judge_usage_sink

    monkeypatch.setitem(sys.modules, "lmms_eval.models.model_utils.usage_metrics", None)
    assert judge_usage_sink(schema.GEN_TASK) is None
