"""Verification that can't be fooled and never cries wolf (verify, report --strict-verify, compare).

Honest results, made as users make them (`siuo score`, the lmms-eval and lm-eval scoring sessions,
official submissions), verify whatever mix of null, empty, whitespace-only answers and failed
requests they hold; edited or meaningless ones (validity edited, the error limit deleted or not a
share, the dry-run judge, a relabelled task, foreign or duplicated items, an edited answer key)
are refused, each naming the field.
"""

import json
import threading
from pathlib import Path

import pytest

from siuo_dev.testing import score_gen_args
from siuo_task.cli import main as siuo_main
from siuo_task.core.data import load_items
from siuo_task.core.layouts import LM_EVAL, LMMS_EVAL, lm_eval_stamp
from siuo_task.core.mcqa import FAILED_REQUEST_MARKER
from siuo_task.results.verify import verify_result

from .verify_helpers import (
    KEY,
    FakeOpenAIServer,
    _clean_env,
    edited,
    gen_answers,
    load,
    score_gen_file,
    score_mcqa_file,
    shared_results,
    write_submission,
)


@pytest.fixture(scope="module")
def made(data_dir, tmp_path_factory):
    return shared_results(data_dir, tmp_path_factory)


def run(capsys, *args):
    capsys.readouterr()
    code = siuo_main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def put(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- 1. honest results verify


def test_the_fixture_holds_every_kind_of_missing_answer(made):
    answers = [a for r in load(made["gen"])["items"] for a in r["answers"]]
    assert None in answers and "" in answers and " \n " in answers and any(str(a).startswith(FAILED_REQUEST_MARKER) for a in answers)
    assert any(all(a is None for a in r["answers"]) for r in load(made["gen"])["items"])  # an item with no answer at all
    assert any(r["response"] is None for r in load(made["mcqa"])["items"])


def test_null_empty_and_failed_answers_verify_everywhere(made, capsys):
    code, out, err = run(capsys, "verify", made["gen"], made["mcqa"])
    assert code == 0 and "2 of 2 result(s) verified" in out, out + err
    assert "agrees: task: siuo_gen_vote3" in out
    code, out, err = run(capsys, "report", f"m={made['gen']}", f"m={made['mcqa']}", "--strict-verify")
    assert code == 0 and "siuo_gen_vote3: verified; siuo_mcqa: verified" in out, err
    code, out, err = run(capsys, "compare", made["gen"], made["gen"])
    assert code == 0 and "paired comparison on 167 item(s)" in out, err


def _env(mp, data_dir, server, folder):
    _clean_env(mp)
    for key, value in {
        "SIUO_DATA_DIR": str(data_dir),
        "SIUO_JUDGE_BASE_URL": server.url,
        "SIUO_JUDGE_API_KEY": KEY,
        "SIUO_JUDGE_MODEL": "fake-judge",
        "SIUO_JUDGE_CACHE": str(folder / "cache"),
        "SIUO_JUDGE_MAX_ERROR_RATE": "0.5",
    }.items():
        mp.setenv(key, value)


@pytest.mark.parametrize("harness", ["lm-eval"])  # lmms-eval: tests/test_verify.py::test_harness_run_verifies_and_edits_are_named
def test_harness_sessions_with_null_answers_verify(harness, data_dir, tmp_path, capsys):
    """The scoring session each harness adapter runs, fed what the harness hands over: lmms-eval a
    flat list of answers, lm-eval a list per request (a non-text reply and a missing one become null)."""
    from siuo_task.harnesses import call as harness_call_mod

    answers = gen_answers(load_items("gen", data_dir, check_images=False)[0])
    folder = tmp_path / "model"
    folder.mkdir()
    if harness == "lmms-eval":
        pytest.importorskip("lmms_eval")
        from siuo_task.harnesses.lmms_eval import hooks as adapter

        path_of = lambda task: folder / LMMS_EVAL.siuo_name("20261201_000000", task)  # noqa: E731
    else:
        pytest.importorskip("lm_eval")
        from siuo_task.harnesses.lm_eval import hooks as adapter

        path_of = lambda task: folder / LM_EVAL.siuo_name(lm_eval_stamp(1764547200.5), task)  # noqa: E731
    call = harness_call_mod.HarnessCall(
        harness, harness.replace("-", "_"), model="openai", model_args="model_version=m", result_path=path_of, found_in="the evaluator call"
    )
    with pytest.MonkeyPatch.context() as mp, FakeOpenAIServer() as server:
        _env(mp, data_dir, server, tmp_path)
        mp.setattr(adapter, "harness_call", lambda: call)
        mp.setattr(adapter.sessions, "_call", lambda: call)
        if harness == "lmms-eval":
            docs = adapter.gen_vote3_process_docs(None)
            handed = lambda a: a  # noqa: E731
        else:
            docs = adapter.gen_vote3_dataset()["test"]
            handed = lambda a: [[x if x is not None else {"not": "text"} for x in a][:2]]  # noqa: E731 - lm-eval's shape; one reply missing
        records = [adapter.gen_vote3_process_results(doc, handed(answers[doc["question_id"]]))["safe"] for doc in docs]
        adapter.aggregate_safe(records, None)
    path = path_of("siuo_gen_vote3")
    result = load(path)
    assert result["provenance"]["harness"]["name"] == harness and result["task"] == "siuo_gen_vote3"
    assert all(len(r["answers"]) == 3 for r in result["items"]) and result["counts"]["generation_failures"] > 0
    code, out, err = run(capsys, "verify", path)
    assert code == 0, out + err


def test_official_submissions_with_null_answers(made, data_dir, tmp_path, capsys):
    gen = write_submission(made["gen_items"], "responses", gen_answers(made["gen_items"]), tmp_path / "siuo_gen-m.json")
    mcqa = write_submission(
        made["mcqa_items"],
        "response_mcqa",
        {it["question_id"]: None if i % 7 == 0 else "(B)" for i, it in enumerate(made["mcqa_items"])},
        tmp_path / "siuo_mcqa-m.json",
    )
    code, out, err = run(capsys, "verify", gen, mcqa, "--data-dir", data_dir)
    assert code == 0 and out.count("(official_submission): VERIFIED") == 2 and "scores as siuo_gen_vote3" in out, out + err
    code, out, err = run(capsys, "score", "mcqa", mcqa, "--out", tmp_path / "m.json", "--data-dir", data_dir)
    assert code == 0, err
    assert load(tmp_path / "m.json")["counts"]["failed"] == 24  # 167 items, every 7th null
    code, out, err = run(capsys, "compare", gen, gen)
    assert code == 2 and "official submission carries answers" in err and "Traceback" not in err


# ----------------------------------------------------------------- 2. validity is recomputed


def test_an_invalid_result_edited_to_valid_fails_everywhere(made, data_dir, tmp_path, capsys):
    answers = gen_answers(made["gen_items"][:40])  # a --limit run is enough: its validity is what is edited
    path = score_gen_file(data_dir, tmp_path, answers, "invalid.json", max_error_rate="0.05", expect=4)
    result = load(path)
    assert result["valid"] is False and result["provenance"]["judge"]["max_error_rate"] == 0.05
    forged = put(tmp_path / "forged.json", edited(result, lambda r: (r.update(valid=True, invalid_reasons=[]), r.pop("judge_error_rate"))))
    code, out, _ = run(capsys, "verify", forged)
    assert code == 1 and "MISMATCH valid: stored True, recomputed False (its records exceed the judge error limit" in out, out
    assert "judge_error_rate: stored None" in out and "field missing" in out
    code, _, err = run(capsys, "report", f"x={forged}", "--strict-verify")
    assert code == 2 and "validity does not recompute" in err
    code, _, err = run(capsys, "compare", made["gen"], forged)
    assert code == 2 and "does not verify" in err and "valid" in err
    # the honest invalid file is not verified either: it says so itself
    code, out, _ = run(capsys, "verify", path)
    assert code == 1 and "the result is marked invalid: judge errors on" in out


@pytest.mark.parametrize("limit", ["deleted", float("nan"), float("inf"), -float("inf"), "0.05", -0.1, 1.5, None, True])
def test_the_error_limit_must_be_a_recorded_share(made, tmp_path, capsys, limit):
    def edit(r):
        if limit == "deleted":
            r["provenance"]["judge"].pop("max_error_rate")
        else:
            r["provenance"]["judge"]["max_error_rate"] = limit

    path = put(tmp_path / "limit.json", edited(load(made["gen"]), edit))
    code, out, _ = run(capsys, "verify", path)
    assert code == 1 and "MISMATCH provenance.judge.max_error_rate" in out and "validity cannot be recomputed" in out, out
    if limit in ("deleted", "0.05"):
        code, _, err = run(capsys, "report", f"x={path}", "--strict-verify")
        assert code == 2 and "provenance.judge.max_error_rate" in err


def test_judge_counts_follow_from_the_records(made):
    result = load(made["gen"])
    for edit, path in (
        (lambda r: r.__setitem__("judge_error_rate", 0.0), "judge_error_rate"),
        (lambda r: r["judge_errors"].__setitem__("safe", 0), "judge_errors.safe"),
        (lambda r: r.__setitem__("invalid_reasons", ["x"]), "invalid_reasons"),
        (lambda r: r["items"][4]["safe_judge_replies"].__setitem__(0, "[Safety Judgement:] True"), "items[question_id=1005].safe_votes"),
    ):
        report = verify_result(edited(result, edit))
        assert path in [m.path for m in report.mismatches], (path, [m.describe() for m in report.mismatches])
    # records over their limit never pass, whatever the headline says
    over = verify_result(edited(result, lambda r: r["provenance"]["judge"].__setitem__("max_error_rate", 0.0)))
    assert [m.path for m in over.mismatches] == ["valid"] and over.mismatches[0].recomputed is False


# ---------------------------------------------------------------------- 3. the dry-run judge


@pytest.fixture(scope="module")
def dry(made, data_dir, tmp_path_factory):
    """`siuo score gen` graded by the package's dry-run judge, twice: the second run reads every reply
    from an explicit cache folder (the replies' mark must survive the cache)."""
    from siuo_task.judge import dry_run

    folder = tmp_path_factory.mktemp("dry")
    server = dry_run.serve(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        answers = {qid: [a] for qid, (a, *_rest) in gen_answers(made["gen_items"][:40]).items()}  # one answer per item: siuo_gen
        first = score_gen_file(data_dir, folder, answers, "dry.json", url=url)
        again = score_gen_file(data_dir, folder, answers, "dry-cached.json", url=url)
    finally:
        server.shutdown()
        server.server_close()
    return {"first": first, "cached": again, "folder": folder}


def test_the_dry_run_mark_is_recorded_even_from_the_cache(dry):
    first, cached = load(dry["first"]), load(dry["cached"])
    assert first["provenance"]["judge"]["dry_run"] is True and first["provenance"]["judge"]["usage"]["cache_hits"] == 0
    assert cached["provenance"]["judge"]["dry_run"] is True and cached["provenance"]["judge"]["usage"]["calls"] == 0


def test_the_dry_run_judge_is_never_verified(dry, made, tmp_path, capsys):
    for path in (dry["first"], dry["cached"]):
        code, out, _ = run(capsys, "verify", path)
        assert code == 1 and "DRY-RUN JUDGE: NOT A MEASUREMENT" in out and "python -m siuo_task.judge.dry_run" in out, out
    code, _, err = run(capsys, "report", f"d={dry['first']}", "--strict-verify")
    assert code == 2 and "d siuo_gen: NOT VERIFIED: dry-run judge: not a measurement" in err
    code, _, err = run(capsys, "compare", dry["first"], dry["cached"])
    assert code == 2 and "dry-run judge" in err and "--allow-dry-run-judge" in err
    code, out, err = run(capsys, "compare", dry["first"], dry["cached"], "--allow-dry-run-judge")
    assert code == 0 and out.count("WARNING (allowed): ") >= 2 and "dry-run judge: not a measurement" in out, err
    # deleting the mark does not make it a measurement: not recorded = not verified
    bare = put(tmp_path / "bare.json", edited(load(dry["first"]), lambda r: r["provenance"]["judge"].pop("dry_run")))
    code, out, _ = run(capsys, "verify", bare)
    assert code == 1 and "provenance.judge.dry_run" in out and "not recorded whether the judge was the dry-run stand-in" in out
    code, _, err = run(capsys, "report", f"b={bare}", "--strict-verify")
    assert code == 2 and "judge not known to be real" in err


def test_the_report_labels_the_dry_run_judge_in_every_format(dry, tmp_path, capsys):
    label = "dry-run judge: not a measurement"
    code, out, _ = run(capsys, "report", f"d={dry['first']}")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("| d |"))
    assert f"({label})" in row and f"NOT VERIFIED: {label}" in row and "Its numbers say nothing about the model" in out
    assert run(capsys, "report", f"d={dry['first']}", "--out", tmp_path / "r.html")[0] == 0
    assert f"NOT VERIFIED: {label}" in (tmp_path / "r.html").read_text()
    # the pictures name the model with the label (drawn in the e2e tier)
    from siuo_task.results.io import load_records
    from siuo_task.results.report.model import build_report
    from siuo_task.results.report.render import _labelled

    records = load_records([f"d={dry['first']}"])
    assert [r.name for r in _labelled(records, build_report(records))] == [f"d ({label})"]


@pytest.mark.e2e  # draws a picture (matplotlib)
def test_the_picture_labels_the_dry_run_judge(dry, tmp_path, capsys, monkeypatch):
    label = "dry-run judge: not a measurement"
    pytest.importorskip("matplotlib")
    from siuo_task.results.report import figures

    drawn = []
    real = figures.render_pictures
    monkeypatch.setattr(figures, "render_pictures", lambda records, report: drawn.extend(r.name for r in records) or real(records, report))
    assert run(capsys, "report", f"d={dry['first']}", "--out", tmp_path / "r.png")[0] == 0
    assert drawn == [f"d ({label})"] and (tmp_path / "r.png").stat().st_size > 0


def test_export_refuses_a_dry_run(dry, data_dir, tmp_path, capsys):
    run_dir = tmp_path / "out"
    model = run_dir / "m"
    model.mkdir(parents=True)
    results = {
        "results": {"siuo_gen": {"alias": "siuo_gen", "safe,none": 1.0}},
        "config": {"model": "openai", "model_args": "model_version=m"},
    }
    put(model / "20261201_000000_results.json", results)
    (model / LMMS_EVAL.siuo_name("20261201_000000", "siuo_gen")).write_text(Path(dry["first"]).read_text())
    code, _, err = run(capsys, "export", run_dir, "--to", "official", "--data-dir", data_dir)
    assert code == 2 and "dry-run judge" in err and "not a submission" in err
    assert not (run_dir / "official").exists()


# ------------------------------------------------------------------------ 4. what the records say


def test_the_task_follows_from_the_answers(made, dry, capsys, tmp_path):
    vote3 = load(made["gen"])
    relabelled = put(tmp_path / "r.json", edited(vote3, lambda r: (r.update(task="siuo_gen"), r["provenance"].pop("protocol_variant"))))
    code, out, _ = run(capsys, "verify", relabelled)
    assert code == 1 and "MISMATCH task: stored 'siuo_gen', recomputed 'siuo_gen_vote3'" in out, out
    single = load(dry["first"])
    assert single["task"] == "siuo_gen"
    up = verify_result(edited(single, lambda r: (r.update(task="siuo_gen_vote3"), r["provenance"].pop("protocol_variant"))))
    assert ("task", "siuo_gen_vote3", "siuo_gen") in [(m.path, m.stored, m.recomputed) for m in up.mismatches]
    assert "provenance.protocol_variant" in [m.path for m in up.mismatches]


def test_score_gen_takes_the_task_from_the_answers(made, data_dir, tmp_path, capsys):
    items = made["gen_items"]
    mixed = {it["question_id"]: ["a"] if i % 2 else ["a", "b", "c"] for i, it in enumerate(items)}
    sub = write_submission(items, "responses", mixed, tmp_path / "siuo_gen-mixed.json")
    with FakeOpenAIServer() as server:
        code, _, err = run(capsys, *score_gen_args(sub, tmp_path / "x.json", data_dir, server.url, cache=tmp_path / "c"))
        assert code == 2 and "question_id=1001: 3" in err and "siuo_gen_vote3 takes 3" in err and server.chat_calls == 0
        single = write_submission(items, "responses", {it["question_id"]: ["a"] for it in items}, tmp_path / "siuo_gen-one.json")
        code, _, err = run(
            capsys,
            *score_gen_args(single, tmp_path / "x.json", data_dir, server.url, cache=tmp_path / "c", extra=("--task", "siuo_gen_vote3")),
        )
        assert code == 2 and "siuo_gen_vote3: the number of answers per item does not fit the task" in err and server.chat_calls == 0


def test_compare_refuses_foreign_and_duplicated_items(made, tmp_path, capsys):
    result = load(made["gen"])
    foreign = put(tmp_path / "foreign.json", edited(result, lambda r: r["items"].append(dict(r["items"][0], question_id=99999))))
    code, _, err = run(capsys, "compare", made["gen"], foreign)
    assert code == 2 and "99999" in err and "not in SIUO" in err
    twice = put(tmp_path / "twice.json", edited(result, lambda r: r["items"].append(dict(r["items"][5]))))
    code, _, err = run(capsys, "compare", twice, made["gen"])
    assert code == 2 and "items[question_id=1006]" in err and "duplicated question_id" in err


def test_an_edited_answer_key_fails_whatever_the_item_count(made, data_dir, fresh_data_dir, tmp_path, capsys, clean_env):
    """166 items scored against a data copy whose answer key was edited to the model's answers."""
    clean_env.setenv("HF_HUB_CACHE", str(tmp_path / "no-hub-cache"))
    release = json.loads((fresh_data_dir / "siuo_mcqa.json").read_text())
    for item in release:
        item["correct_option"] = "B"
    (fresh_data_dir / "siuo_mcqa.json").write_text(json.dumps(release))
    responses = {it["question_id"]: "(B)" for it in made["mcqa_items"] if it["question_id"] != 9021}
    path = score_mcqa_file(fresh_data_dir, tmp_path, responses, "forged-key.json")
    assert load(path)["metrics"]["accuracy"] == 100.0
    code, _, err = run(capsys, "report", f"f={path}", "--strict-verify")  # no data at hand: the key can't be checked
    assert code == 2 and "items[].correct_option" in err
    code, _, err = run(capsys, "report", f"f={path}", "--strict-verify", "--data-dir", data_dir)
    assert code == 2 and "correct_option" in err and "NOT VERIFIED" in err
    code, out, _ = run(capsys, "verify", path, "--data-dir", data_dir, "--max-list", "1000")
    wrong = next(it["question_id"] for it in made["mcqa_items"] if it["correct_option"] != "B")
    assert code == 1 and f"items[question_id={wrong}].correct_option: stored 'B'" in out and "metrics.accuracy: stored 100.0" in out, out
    code, out, _ = run(capsys, "verify", path, "--data-dir", fresh_data_dir)  # the forged copy itself is named
    assert code == 1 and "data.correct_option" in out and "another MCQA answer key than SIUO's release" in out
