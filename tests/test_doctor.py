"""``siuo doctor``: a healthy environment passes; a missing data folder, an unreachable judge and a vLLM
class that would decode otherwise each fail with their fix; the judge's key is never printed."""

import json

import pytest

from siuo_dev.fake_judge_server import FakeOpenAIServer
from siuo_dev.lmms_eval_runs import free_port
from siuo_task.cli import main
from siuo_task.cli.doctor import format_report

pytestmark = pytest.mark.e2e  # the doctor builds lmms-eval's own task index (the harness, in-process)

pytest.importorskip("lmms_eval")
SECRET = "sk-doctor-SECRET-4242"


def doctor(capsys, *args):
    code = main(["doctor", "--json", *args])
    out = capsys.readouterr().out
    assert SECRET not in out
    report = json.loads(out)
    return code, report, {c["name"]: c for c in report["checks"]}


@pytest.fixture
def judge(clean_env, data_dir):
    with FakeOpenAIServer() as server:
        clean_env.setenv("SIUO_DATA_DIR", str(data_dir))
        clean_env.setenv("SIUO_JUDGE_BASE_URL", server.url)
        clean_env.setenv("SIUO_JUDGE_API_KEY", SECRET)
        clean_env.setenv("SIUO_JUDGE_MODEL", "fake-judge")
        clean_env.setenv("SIUO_JUDGE_CACHE", "off")
        yield server


def test_healthy_environment(judge, capsys, data_dir):
    code, report, checks = doctor(capsys, "--model", "openai", "--model_args", "model_version=gpt-4o")
    assert code == 0 and report["ok"] is True
    assert {name: c["status"] for name, c in checks.items()} == {
        "harness": "ok",
        "discovery": "ok",
        "data": "ok",
        "judge": "ok",
        "decoding": "ok",
    }
    assert report["versions"]["lmms-eval"] and report["versions"]["siuo-task"]
    assert "automatically" in checks["discovery"]["detail"]
    # the listing command that shows SIUO (checked against the real CLIs in test_listing.py)
    assert "`lmms-eval --tasks list`" in checks["discovery"]["detail"] and "don't load plugins" in checks["discovery"]["detail"]
    assert "SIUO_DATA_DIR" in checks["data"]["detail"] and str(data_dir) in checks["data"]["detail"]
    assert "167 items" in checks["data"]["detail"]
    # which judge, where, and which variable's key goes there - never the key
    assert "fake-judge" in checks["judge"]["detail"] and judge.url.split("//")[1].split("/")[0] in checks["judge"]["detail"]
    assert "SIUO_JUDGE_API_KEY" in checks["judge"]["detail"]
    assert judge.chat_calls == 1  # the preflight: one minimal judge call, nothing else
    text = format_report(report)  # the human-readable form
    assert "SIUO will run here." in text and "[FAIL]" not in text and SECRET not in text


def test_missing_data_folder(judge, capsys, tmp_path, clean_env):
    clean_env.setenv("SIUO_DATA_DIR", str(tmp_path / "nowhere"))
    code, report, checks = doctor(capsys, "--tasks", "siuo_mcqa")
    assert code == 1 and report["ok"] is False
    assert checks["data"]["status"] == "fail" and str(tmp_path / "nowhere") in checks["data"]["detail"]
    assert "SIUO_DATA_DIR" in checks["data"]["fix"] and "siuo_gen.json" in checks["data"]["fix"]
    assert checks["judge"]["status"] == "ok" and "not needed" in checks["judge"]["detail"]  # MCQA needs no judge


def test_unreachable_judge(judge, capsys, clean_env):
    port = free_port()  # nothing listens there
    clean_env.setenv("SIUO_JUDGE_BASE_URL", f"http://127.0.0.1:{port}/v1")
    code, report, checks = doctor(capsys)
    assert code == 1 and report["ok"] is False
    assert checks["judge"]["status"] == "fail" and f"127.0.0.1:{port}" in checks["judge"]["detail"]
    assert "SIUO_JUDGE_BASE_URL" in checks["judge"]["fix"]
    assert checks["data"]["status"] == "ok"
    text = format_report(report)  # the human-readable form names the fix too
    assert "[FAIL] judge" in text and "fix: start the judge server" in text and SECRET not in text


def test_vllm_class_decoding_trap(judge, capsys):
    """``--model vllm`` without max_new_tokens=1 would generate 4096 tokens per answer: the doctor fails
    with the fix, and passes once the fix is applied. (lmms-eval's vLLM class loads without vLLM; the
    check reads only the class's own request rules, no engine.)"""
    code, report, checks = doctor(capsys, "--tasks", "siuo_mcqa,siuo_gen_vote3", "--model", "vllm", "--model_args", "model=/models/x")
    assert code == 1 and report["ok"] is False
    decoding = checks["decoding"]
    assert decoding["status"] == "fail" and "lmms_eval.models.chat.vllm" in decoding["detail"]
    assert "siuo_mcqa: up to 4096 new tokens, not 5" in decoding["detail"]
    assert "siuo_gen_vote3: top_p=0.95, not 1.0" in decoding["detail"]
    assert "max_new_tokens=1" in decoding["fix"] and "top_p=1.0" in decoding["fix"]
    assert {c["name"] for c in report["checks"] if c["status"] == "fail"} == {"decoding"}
    code, report, checks = doctor(
        capsys,
        "--tasks",
        "siuo_mcqa,siuo_gen_vote3",
        "--model",
        "vllm",
        "--model_args",
        "model=/models/x,max_new_tokens=1",
        "--gen_kwargs",
        "top_p=1.0",
    )
    assert code == 0 and checks["decoding"]["status"] == "ok"


def test_key_source_names_the_variable_never_the_key(clean_env):
    """The doctor's judge line says which variable's key goes where (the resolved endpoint's account), never the key."""
    from siuo_task.judge import JudgeConfig

    clean_env.setenv("OPENAI_API_KEY", SECRET)
    openai = JudgeConfig.from_env().target
    assert openai.auth == "the key from OPENAI_API_KEY in Authorization: Bearer" and SECRET not in openai.auth
    clean_env.setenv("SIUO_JUDGE_BASE_URL", "http://127.0.0.1:8000/v1")
    assert JudgeConfig.from_env().target.auth == "no key"  # the judge's scoping rule decides: OPENAI_API_KEY stays with OpenAI
    clean_env.setenv("SIUO_JUDGE_API_KEY", SECRET)
    local = JudgeConfig.from_env().target
    assert local.auth == "the key from SIUO_JUDGE_API_KEY in Authorization: Bearer"
    assert "URL from SIUO_JUDGE_BASE_URL" in local.described and SECRET not in repr(local)
    clean_env.setenv("SIUO_JUDGE_BASE_URL", "https://res.openai.azure.com/openai/deployments/judge?api-version=2024-06-01")
    azure = JudgeConfig.from_env().target
    assert azure.auth == "the key from SIUO_JUDGE_API_KEY in the api-key header"
    assert "api-version 2024-06-01 (base URL)" in azure.described


def test_a_host_task_named_like_siuos_fails_the_doctor_with_the_fix(judge, capsys, host_with_siuo_task, clean_env):
    """lmms-eval would run the other ``siuo_gen``: the doctor fails naming both files and the switch; with
    the switch set to siuo-task it passes (and lmms-eval's index then holds SIUO's YAML)."""
    host_yaml = str(host_with_siuo_task / "siuo" / "siuo_gen.yaml")
    code, report, checks = doctor(capsys, "--tasks", "siuo_mcqa")
    assert code == 1 and report["ok"] is False
    discovery = checks["discovery"]
    assert discovery["status"] == "fail" and host_yaml in discovery["detail"] and "siuo_gen.yaml" in discovery["detail"].split(host_yaml)[1]
    assert "SIUO_TASK_SOURCE=siuo-task" in discovery["fix"]
    assert {c["name"] for c in report["checks"] if c["status"] == "fail"} == {"discovery"}
    assert "fix: export SIUO_TASK_SOURCE=siuo-task" in format_report(report)
    clean_env.setenv("SIUO_TASK_SOURCE", "siuo-task")
    code, report, checks = doctor(capsys, "--tasks", "siuo_mcqa")
    assert code == 0 and checks["discovery"]["status"] == "ok" and "SIUO_TASK_SOURCE=siuo-task" in checks["discovery"]["detail"]
    clean_env.setenv("SIUO_TASK_SOURCE", "host")
    code, report, checks = doctor(capsys, "--tasks", "siuo_mcqa")
    assert code == 0 and checks["discovery"]["status"] == "warn" and "not siuo-task's" in checks["discovery"]["detail"]


def test_the_judge_check_names_the_variables_and_lmms_evals_judge(clean_env, capsys, data_dir, tmp_path):
    """With only lmms-eval's judge variables (OPENAI_API_URL from a .env file), the doctor's judge is
    that one and names where each setting came from; with SIUO_JUDGE_* pointing elsewhere it warns,
    naming both judges; never a key."""
    clean_env.chdir(tmp_path)
    clean_env.setenv("SIUO_DATA_DIR", str(data_dir))
    clean_env.setenv("SIUO_JUDGE_CACHE", "off")
    with FakeOpenAIServer(require_key=SECRET) as lmms, FakeOpenAIServer() as siuo:
        (tmp_path / ".env").write_text(f"OPENAI_API_URL={lmms.url}/chat/completions\nOPENAI_API_KEY={SECRET}\n")
        clean_env.setenv("MODEL_VERSION", "fake-judge")
        code, report, checks = doctor(capsys, "--tasks", "siuo_gen")
        judge = checks["judge"]
        assert code == 0 and judge["status"] == "ok" and lmms.chat_calls == 1
        assert "model from MODEL_VERSION, URL from OPENAI_API_URL (.env), key from OPENAI_API_KEY (.env)" in judge["detail"]
        assert str(tmp_path / ".env") in judge["detail"]
        clean_env.setenv("SIUO_JUDGE_BASE_URL", siuo.url)
        code, report, checks = doctor(capsys, "--tasks", "siuo_gen")
        judge = checks["judge"]
        assert code == 0 and judge["status"] == "warn" and siuo.chat_calls == 1 and lmms.chat_calls == 1
        port = lmms.url.split("//")[1].split("/")[0]
        assert "fake-judge at 127.0.0.1" in judge["detail"] and f"fake-judge at {port}" in judge["detail"].split("not with")[1]
        assert "SIUO_JUDGE_BASE_URL" in judge["detail"] and "[WARN] judge" in format_report(report)
        assert "Authorization" not in json.dumps(siuo.requests)  # OPENAI_API_KEY stays with OPENAI_API_URL
