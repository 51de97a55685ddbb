"""`siuo verify` on a real lmms-eval run of all 167 items (fake model and fake judge on 127.0.0.1)."""

import json
import subprocess

import pytest

from siuo_dev.lmms_eval_runs import openai_model_args
from siuo_task.results import io as results_io

from .conftest import PYTHON, harness_env
from .verify_helpers import FakeOpenAIServer

pytestmark = pytest.mark.e2e
pytest.importorskip("lmms_eval")


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("verify_e2e")
    out = root / "out"
    with FakeOpenAIServer() as server:
        env = {
            "SIUO_DATA_DIR": str(data_dir),
            "OPENAI_API_KEY": "dummy",
            "SIUO_JUDGE_BASE_URL": server.url,
            "SIUO_JUDGE_API_KEY": "x",
            "SIUO_JUDGE_CACHE": str(root / "cache"),
            "SIUO_JUDGE_MODEL": "fake-judge",
        }
        cmd = [
            PYTHON,
            "-m",
            "lmms_eval",
            "--model",
            "openai",
            "--model_args",
            openai_model_args(server.url, model="fake-model", num_concurrent=8),
            "--tasks",
            "siuo",
            "--output_path",
            str(out),
            "--log_samples",
        ]
        proc = subprocess.run(cmd, env=harness_env(env), capture_output=True, text=True, timeout=600)
    assert list(out.glob("*/*_results.json")), (proc.stdout + proc.stderr)[-3000:]
    return out


def verify(*args):
    proc = subprocess.run(
        [PYTHON, "-m", "siuo_task.cli", "verify", *map(str, args)], env=harness_env(), capture_output=True, text=True, timeout=120
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_real_lmms_eval_run_verifies_and_edits_are_named(run_dir, tmp_path):
    code, out = verify(run_dir)
    assert code == 0 and "2 of 2 result(s) verified" in out, out
    assert "the harness's headline numbers and standard errors for siuo_gen" in out
    assert "the harness's headline numbers and standard errors for siuo_mcqa" in out
    assert out.count("agrees: 167 per-item record(s) recompute") == 2
    # a per-item verdict edited in the SIUO file
    linked = [path for model in results_io.model_dirs(run_dir) for path, _ in results_io.siuo_files_for_model_dir(model)]
    gen_path = next(p for p in linked if json.loads(p.read_text())["task"] == "siuo_gen")
    assert gen_path.parent == next(run_dir.glob("*/*_results.json")).parent  # beside the harness's results file
    original_gen = gen_path.read_text()
    result = json.loads(original_gen)
    result["items"][7]["safe"] = 1 - (result["items"][7]["safe"] or 0)
    gen_path.write_text(json.dumps(result))
    code, out = verify(run_dir)
    assert code == 1 and f"items[question_id={result['items'][7]['question_id']}].safe" in out, out
    gen_path.write_text(original_gen)
    # a headline number edited in the harness's own results file
    results_path = next(run_dir.glob("*/*_results.json"))
    harness = json.loads(results_path.read_text())
    original_results = results_path.read_text()
    harness["results"]["siuo_gen"]["safe,none"] = 99.9
    results_path.write_text(json.dumps(harness))
    code, out = verify(run_dir)
    assert code == 1 and "results.siuo_gen.safe: stored 99.9" in out, out
    # and a standard error lmms-eval computed from the per-item scores (real numbers: they verify above)
    harness = json.loads(original_results)
    assert isinstance(harness["results"]["siuo_mcqa"]["accuracy_stderr_clt,none"], float)
    harness["results"]["siuo_mcqa"]["accuracy_stderr_clt,none"] = 1.5
    results_path.write_text(json.dumps(harness))
    code, out = verify(run_dir)
    assert code == 1 and "results.siuo_mcqa.accuracy_stderr_clt: stored 1.5" in out, out
    results_path.write_text(original_results)


def test_compare_takes_model_folders(run_dir):
    model = next(run_dir.glob("*/*_results.json")).parent
    proc = subprocess.run(
        [PYTHON, "-m", "siuo_task.cli", "compare", str(model), str(model), "--json"],
        env=harness_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    assert [r["setting"] for r in reports] == ["gen", "mcqa"]
    for report in reports:  # a model against itself: every pair concordant
        overall = [r for r in report["rows"] if r["scope"] == "overall"]
        assert all(r["n"] == 167 and r["diff"] == 0.0 and r["p_value"] == 1.0 for r in overall if r["metric"] != "unparsed")
        assert report["differing_items"] == []
