"""`siuo verify`: untouched results recompute; a hand edit of any number is found and named.

Results are made as users make them: `siuo score gen` against the fake judge, `siuo score mcqa`, the
lmms-eval adapter's own aggregation (which writes the harness's per-item file), and the official
submission format `siuo export` writes.
"""

import hashlib
import json
from collections import defaultdict

import numpy as np
import pytest

from siuo_task.cli import main as siuo_main
from siuo_task.core import schema
from siuo_task.core.data import HF_REVISION, load_items
from siuo_task.core.layouts import LMMS_EVAL, linked_result_path
from siuo_task.results.verify import ITEM_ID_RANGES, MCQA_KEY_SHA256, verification_label, verify_result

from .verify_helpers import (
    JUDGE,
    KEY,
    FakeOpenAIServer,
    _clean_env,
    edited,
    gen_answers,
    load,
    mcqa_response,
    score_gen_file,
    shared_results,
    write_submission,
)


@pytest.fixture(scope="module")
def files(data_dir, tmp_path_factory):
    return shared_results(data_dir, tmp_path_factory)


def run_verify(capsys, *args):
    capsys.readouterr()  # drop what earlier steps printed
    code = siuo_main(["verify", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out + out.err


# ------------------------------------------------------------------------------------ pinned facts


def test_pinned_ids_categories_and_answer_key_match_the_release(release_dir):
    gen = json.loads((release_dir / "siuo_gen.json").read_text(encoding="utf-8"))
    mcqa = json.loads((release_dir / "siuo_mcqa.json").read_text(encoding="utf-8"))
    by_category = defaultdict(list)
    for item in gen:
        by_category[item["category"]].append(item["question_id"])
    assert {cat: (min(ids), max(ids)) for cat, ids in by_category.items()} == ITEM_ID_RANGES
    assert all(sorted(ids) == list(range(min(ids), max(ids) + 1)) for ids in by_category.values())
    key = "".join(f"{r['question_id']}:{r['correct_option']}\n" for r in sorted(mcqa, key=lambda r: r["question_id"]))
    assert hashlib.sha256(key.encode()).hexdigest() == MCQA_KEY_SHA256


# -------------------------------------------------------------------------------- untouched results


def test_untouched_score_results_verify(files, capsys):
    code, out = run_verify(capsys, files["gen"], files["mcqa"])
    assert code == 0, out
    assert "2 of 2 result(s) verified" in out
    assert "agrees: 167 per-item record(s) recompute" in out
    assert "agrees: metrics.safe_effective" in out and "agrees: metrics.accuracy" in out
    # with the data: ids, categories and the answer key are checked against it
    code, out = run_verify(capsys, files["gen"], files["mcqa"], "--data-dir", files["data_dir"])
    assert code == 0, out
    assert "question_ids and categories (the data)" in out


def test_the_fixture_exercises_every_rule(files):
    gen = load(files["gen"])
    assert gen["counts"]["generation_failures"] > 0 and gen["judge_errors"]["safe"] > 0
    assert gen["counts"]["no_verdict"]["safe"] > 0 and any(a == "" for r in gen["items"] for a in r["answers"])
    mcqa = load(files["mcqa"])
    assert mcqa["counts"]["unparsed"] > 0 and mcqa["counts"]["failed"] > 0


def test_json_output(files, capsys):
    code, out = run_verify(capsys, files["gen"], "--json")
    reports = json.loads(out)
    assert code == 0 and reports[0]["ok"] is True and reports[0]["items_checked"] == 167 and reports[0]["mismatches"] == []


# ------------------------------------------------------------------------------------- hand edits


def _flip(value):
    return 1 - value if value in (0, 1) else 1


def _other_rate(value):
    return 0.0 if value != 0.0 else 100.0


GEN_EDITS = {
    "headline": (lambda r: r["metrics"].__setitem__("safe", 99.9), "metrics.safe: stored 99.9"),
    "interval": (lambda r: r["ci95"]["safe_effective"].__setitem__(1, r["ci95"]["safe_effective"][1] + 1.0), "ci95.safe_effective"),
    "category rate": (
        lambda r: r["by_category"]["morality"].__setitem__("effective", _other_rate(r["by_category"]["morality"]["effective"])),
        "by_category.morality.effective",
    ),
    "category interval": (
        lambda r: r["by_category"]["self-harm"]["ci95"].__setitem__("safe", [0.0, 100.0]),
        "by_category.self-harm.ci95.safe",
    ),
    "item verdict": (lambda r: r["items"][1].__setitem__("safe", _flip(r["items"][1]["safe"])), "items[question_id=1002].safe:"),
    "item vote": (lambda r: r["items"][0].__setitem__("safe_votes", [0]), "items[question_id=1001].safe_votes"),
    "judge error count": (
        lambda r: r["judge_errors"].__setitem__("effective", r["judge_errors"]["effective"] + 1),
        "judge_errors.effective",
    ),
    "failure count": (lambda r: r["counts"].__setitem__("generation_failures", 0), "counts.generation_failures"),
}

MCQA_EDITS = {
    "headline": (lambda r: r["metrics"].__setitem__("accuracy", 88.8), "metrics.accuracy: stored 88.8"),
    "interval": (lambda r: r["ci95"].__setitem__("accuracy", [17.58, 30.32]), "ci95.accuracy"),
    "category rate": (
        lambda r: r["by_category"]["privacy violation"].__setitem__(
            "accuracy", _other_rate(r["by_category"]["privacy violation"]["accuracy"])
        ),
        "by_category.privacy violation.accuracy",
    ),
    "item decision": (lambda r: r["items"][0].__setitem__("correct", _flip(r["items"][0]["correct"])), "items[question_id=1001].correct"),
    "unparsed count": (lambda r: r["counts"].__setitem__("unparsed", 0), "counts.unparsed"),
}


@pytest.mark.parametrize("setting, name", [("gen", n) for n in GEN_EDITS] + [("mcqa", n) for n in MCQA_EDITS])
def test_a_hand_edit_fails_and_is_named(files, tmp_path, capsys, setting, name):
    edit, named = (GEN_EDITS if setting == "gen" else MCQA_EDITS)[name]
    path = tmp_path / f"{setting}.json"
    path.write_text(json.dumps(edited(load(files[setting]), edit)))
    code, out = run_verify(capsys, path)
    assert code == 1, out
    assert "NOT VERIFIED" in out and "MISMATCH" in out
    assert named in out, out


def test_edited_headline_says_stored_and_recomputed(files):
    result = load(files["gen"])
    report = verify_result(edited(result, GEN_EDITS["headline"][0]))
    assert [(m.path, m.stored, m.recomputed) for m in report.mismatches] == [("metrics.safe", 99.9, result["metrics"]["safe"])]


def test_provenance_and_validity_checks(files):
    result = load(files["gen"])
    cases = {
        "valid": lambda r: r.update(valid=False, invalid_reasons=["judge errors on 40% of answers"]),
        "provenance.prompt_hashes.safety_judge": lambda r: r["provenance"]["prompt_hashes"].__setitem__("safety_judge", "0" * 16),
        "provenance.dataset.hf_revision": lambda r: r["provenance"].__setitem__(
            "dataset", {"origin": "huggingface", "hf_repo": "sinwang/SIUO", "hf_revision": "main", "data_dir": "/x"}
        ),
        "provenance.judge": lambda r: r["provenance"].pop("judge"),
        "provenance.judge.decoding": lambda r: r["provenance"]["judge"].pop("decoding"),
        "items[question_id=1001].category": lambda r: r["items"][0].__setitem__("category", "morality"),
    }
    for path, edit in cases.items():
        report = verify_result(edited(result, edit))
        assert not report.ok and path in [m.path for m in report.mismatches], (path, [m.describe() for m in report.mismatches])
    marked = verify_result(edited(result, cases["valid"]))
    assert "judge errors on 40% of answers" in marked.mismatches[0].note
    # the pinned revision passes; a file without the validity fields is not verifiable (validity is recomputed, not read)
    pinned = edited(
        result,
        lambda r: r["provenance"].__setitem__(
            "dataset", {"origin": "huggingface", "hf_repo": "sinwang/SIUO", "hf_revision": HF_REVISION, "data_dir": "/x"}
        ),
    )
    assert verify_result(pinned).ok
    bare = verify_result(edited(result, lambda r: [r.pop(k) for k in ("valid", "invalid_reasons", "judge_error_rate")]))
    assert {"valid", "judge_error_rate"} <= {m.path for m in bare.mismatches if m.note == "field missing"}
    assert verify_result(result).ok
    # a result whose judge errors exceed its recorded limit can't be marked valid by hand
    over = verify_result(edited(result, lambda r: r["provenance"]["judge"].__setitem__("max_error_rate", 0.01)))
    assert not over.ok and "valid" in [m.path for m in over.mismatches]
    assert not verify_result(edited(result, lambda r: r.__setitem__("judge_error_rate", 0.0))).ok
    assert verify_result(edited(result, lambda r: r.update(valid=True, invalid_reasons=[]))).ok


def test_missing_items_are_named(files, tmp_path, capsys):
    data_dir = files["data_dir"]
    items = load_items("gen", data_dir, check_images=False)[0]
    answers = {qid: a for qid, a in gen_answers(items).items() if qid not in (1005, 9021)}
    path = score_gen_file(data_dir, tmp_path, answers, name="partial.json")
    code, out = run_verify(capsys, path)
    assert code == 1 and "incomplete: 2 SIUO item(s) have no answer, question_id(s) [1005, 9021]" in out
    assert verification_label(load(path))[:2] == (False, "NOT VERIFIED: incomplete (165 of 167 items)")
    # ... also against the data, and a result whose stored missing list is edited is caught
    code, out = run_verify(capsys, path, "--data-dir", data_dir)
    assert code == 1 and "[1005, 9021]" in out
    report = verify_result(edited(load(path), lambda r: r.update(missing_question_ids=[1005])))
    assert "missing_question_ids" in [m.path for m in report.mismatches]


def test_category_and_answer_key_checked_against_the_data(files):
    mcqa_items = load_items("mcqa", files["data_dir"], check_images=False)[0]
    result = load(files["mcqa"])
    # a changed correct option (and a decision recomputed to match it) is caught with and without the data
    item = result["items"][1]
    other = next(c for c in "ABCD" if c != item["correct_option"])

    def swap_key(r):
        r["items"][1]["correct_option"] = other

    for items in (mcqa_items, None):
        report = verify_result(edited(result, swap_key), items)
        paths = [m.path for m in report.mismatches]
        assert ("items[question_id=1002].correct_option" in paths) if items else ("items[].correct_option" in paths), paths


def test_verification_label(files):
    result = load(files["gen"])
    assert verification_label(result) == (True, "verified", [])
    ok, label, mismatches = verification_label(edited(result, GEN_EDITS["headline"][0]))
    assert not ok and label == "NOT VERIFIED: 1 number differs (metrics.safe)" and mismatches[0].path == "metrics.safe"
    ok, label, _ = verification_label(edited(result, lambda r: (r["ci95"]["safe"].reverse(), r.update(valid=False))))
    assert not ok and label == "NOT VERIFIED: marked invalid; 1 number differs (ci95.safe)"
    headline_only = {"task": "siuo_gen", "metrics": {"safe": 50.0}, "ci95": {}, "items": [], "provenance": {}, "headline_only": True}
    ok, label, _ = verification_label(headline_only)
    assert not ok and "headline numbers only" in label


# ----------------------------------------------------------------------------- official submissions


def test_official_submission_files(files, tmp_path, capsys):
    data_dir = files["data_dir"]
    gen_items = load_items("gen", data_dir, check_images=False)[0]
    mcqa_items = load_items("mcqa", data_dir, check_images=False)[0]
    gen = write_submission(gen_items, "responses", gen_answers(gen_items), tmp_path / "siuo_gen-m.json")
    mcqa = write_submission(mcqa_items, "response_mcqa", {it["question_id"]: "(A)" for it in mcqa_items}, tmp_path / "siuo_mcqa-m.json")
    code, out = run_verify(capsys, gen, mcqa, "--data-dir", data_dir)
    assert code == 0, out
    assert "official_submission" in out and "carries answers, no numbers" in out
    rows = json.loads(gen.read_text())
    rows[3]["question"] = "an edited question"
    del rows[0]
    gen.write_text(json.dumps(rows))
    code, out = run_verify(capsys, gen, "--data-dir", data_dir)
    assert code == 1 and "items[question_id=1004].question" in out and "question_id(s) [1001]" in out


# ------------------------------------------------------------------------------------ harness files


RUN_STAMP = "20261201_000000"


@pytest.fixture(scope="module")
def harness_run(data_dir, tmp_path_factory):
    """One evaluation through the lmms-eval adapter's hooks, in process: process_docs begins each
    task's scoring session, process_results records the answers, the aggregations score them and
    write the per-item files beside the model's results file (named by the schema's link); the
    results.json then holds the headline numbers the harness got back."""
    pytest.importorskip("lmms_eval")
    from siuo_task.harnesses import call as harness_call_mod
    from siuo_task.harnesses.lmms_eval import hooks as adapter

    out = tmp_path_factory.mktemp("harness_out")
    results_path = out / "fake-model" / f"{RUN_STAMP}{LMMS_EVAL.results_glob[1:]}"
    model_args = "model_version=fake-model,api_key=SECRET"
    call = harness_call_mod.HarnessCall(
        "lmms-eval",
        "lmms_eval",
        model="openai",
        model_args=model_args,
        gen_kwargs="",
        result_path=lambda task: linked_result_path(results_path, {}, task),
        found_in="the evaluator call",
    )
    gen_items = load_items("gen", data_dir, check_images=False)[0]
    answers = gen_answers(gen_items)
    with pytest.MonkeyPatch.context() as mp, FakeOpenAIServer() as server:
        _clean_env(mp)
        for key, value in {
            "SIUO_DATA_DIR": str(data_dir),
            "SIUO_JUDGE_BASE_URL": server.url,
            "SIUO_JUDGE_API_KEY": KEY,
            "SIUO_JUDGE_MODEL": JUDGE,
            "SIUO_JUDGE_CACHE": str(out / "cache"),
            "SIUO_JUDGE_MAX_ERROR_RATE": "0.5",
        }.items():
            mp.setenv(key, value)
        mp.setattr(adapter, "harness_call", lambda: call)
        headline, filters = {}, {"siuo_gen_vote3": "vote3", "siuo_mcqa": "none"}  # three answers per item: the paper's protocol
        for task, begin, process in (
            ("siuo_gen_vote3", adapter.gen_vote3_process_docs, adapter.gen_vote3_process_results),
            ("siuo_mcqa", adapter.mcqa_process_docs, None),
        ):
            docs = begin(None)
            per_item = [
                process(doc, answers[doc["question_id"]]) if process else adapter.mcqa_process_results(doc, [mcqa_response(i, doc)])
                for i, doc in enumerate(docs)
            ]
            headline[task] = {}
            for name in schema.METRICS[task]:
                records = [r[name] for r in per_item]
                headline[task][name] = getattr(adapter, f"aggregate_{name}")(records, None)
                # what lmms-eval then computes from the scores the aggregation wrote (evaluator_utils, 0.6/0.7)
                scores = [r[schema.ITEM_SCORE_KEY] for r in records if schema.ITEM_SCORE_KEY in r]
                headline[task][f"{name}_stderr_clt"] = float(np.std(scores, ddof=1) / np.sqrt(len(scores)))
                headline[task][f"{name}_stderr_clustered"] = headline[task][f"{name}_stderr_clt"]
                headline[task][f"{name}_stderr"] = "N/A"
    results = {
        "results": {task: {"alias": task, **{f"{k},{filters[task]}": v for k, v in values.items()}} for task, values in headline.items()},
        "config": {"model": "openai", "model_args": model_args},
    }
    results_path.write_text(json.dumps(results))
    return out


def _siuo_files(run_dir):
    """The per-item files a harness run links to, by the schema's names alone."""
    found = []
    for results_path in sorted(run_dir.glob(f"*/*{LMMS_EVAL.results_glob[1:]}")):
        results = json.loads(results_path.read_text())
        for task in results["results"]:
            linked = linked_result_path(results_path, results, task)
            if linked is not None and linked.is_file():
                found.append(linked)
    return found


def test_harness_run_verifies_and_edits_are_named(harness_run, tmp_path, capsys):
    siuo_files = _siuo_files(harness_run)
    assert [p.name for p in siuo_files] == [f"{RUN_STAMP}_siuo_siuo_gen_vote3.json", f"{RUN_STAMP}_siuo_siuo_mcqa.json"]
    assert [load(p)["provenance"]["harness"]["name"] for p in siuo_files] == ["lmms-eval", "lmms-eval"]
    code, out = run_verify(capsys, *siuo_files)
    assert code == 0, out
    code, out = run_verify(capsys, harness_run)  # the output folder: per-item files and the harness's numbers
    assert code == 0 and "2 of 2 result(s) verified" in out, out
    assert "the harness's headline numbers and standard errors for siuo_gen_vote3" in out
    assert "provenance.harness.task_generation_kwargs: recorded" in out
    for task, edits in (("siuo_gen_vote3", GEN_EDITS), ("siuo_mcqa", MCQA_EDITS)):
        path = next(p for p in siuo_files if load(p)["task"] == task)
        for name, (edit, named) in edits.items():
            bad = tmp_path / f"{task}-{name}.json"
            bad.write_text(json.dumps(edited(load(path), edit)))
            code, out = run_verify(capsys, bad)
            assert code == 1 and named in out, (task, name, out)
    # an edited headline in the harness's own results file is named too
    results_path = harness_run / "fake-model" / f"{RUN_STAMP}{LMMS_EVAL.results_glob[1:]}"
    original = results_path.read_text()
    try:
        results = json.loads(original)
        results["results"]["siuo_mcqa"]["accuracy,none"] = 88.8
        results_path.write_text(json.dumps(results))
        code, out = run_verify(capsys, harness_run)
        assert code == 1 and "results.siuo_mcqa.accuracy: stored 88.8" in out, out
        # the vote3 filter's numbers and every standard error are checked too
        for task, key, forged, named in (
            ("siuo_gen_vote3", "safe,vote3", 99.9, "results.siuo_gen_vote3.safe: stored 99.9"),
            ("siuo_mcqa", "accuracy_stderr_clt,none", 0.5, "results.siuo_mcqa.accuracy_stderr_clt: stored 0.5"),
            (
                "siuo_gen_vote3",
                "safe_effective_stderr_clustered,vote3",
                7.0,
                "results.siuo_gen_vote3.safe_effective_stderr_clustered: stored 7.0",
            ),
        ):
            results = json.loads(original)
            results["results"][task][key] = forged
            results_path.write_text(json.dumps(results))
            code, out = run_verify(capsys, harness_run)
            assert code == 1 and named in out, (key, out)
        results = json.loads(original)  # "N/A" (lm-eval, older runs, n < 2) is no number: not checked
        results["results"]["siuo_mcqa"]["accuracy_stderr_clt,none"] = "N/A"
        results_path.write_text(json.dumps(results))
        assert run_verify(capsys, harness_run)[0] == 0
    finally:
        results_path.write_text(original)


def test_numbers_the_verifier_does_not_know_are_named(files):
    result = edited(load(files["gen"]), lambda r: r["metrics"].__setitem__("judge_error_rate", 3.0))
    report = verify_result(result)
    assert report.ok and any("metrics.judge_error_rate" in note and "not checked" in note for note in report.notes)
    assert not any("not checked" in note for note in verify_result(load(files["gen"])).notes)


def test_submission_without_release_fields(tmp_path, capsys):
    rows = [{"question_id": qid, "responses": ["an answer"]} for lo, hi in ITEM_ID_RANGES.values() for qid in range(lo, hi + 1)]
    path = tmp_path / "siuo_gen-bare.json"
    path.write_text(json.dumps(rows))
    code, out = run_verify(capsys, path)
    assert code == 0, out
    path.write_text(json.dumps(rows + [{"question_id": 12345, "responses": ["x"]}]))
    code, out = run_verify(capsys, path)
    assert code == 1 and "not in SIUO" in out and "12345" in out


def test_json_output_names_each_mismatch(files, tmp_path, capsys):
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(edited(load(files["mcqa"]), MCQA_EDITS["interval"][0])))
    code, out = run_verify(capsys, path, "--json")
    [report] = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert [(m["path"], m["stored"]) for m in report["mismatches"]] == [("ci95.accuracy", [17.58, 30.32])]
    assert report["mismatches"][0]["recomputed"] == load(files["mcqa"])["ci95"]["accuracy"]


def test_an_answer_the_model_never_gave_recomputes_as_a_generation_failure(data_dir):
    """A null answer (the harness got no text: lmms-eval's and lm-eval's non-string replies, inspect's
    content-filtered requests, `null` in a submission) is a generation failure in the scoring core;
    verification recomputes it the same way instead of refusing an honest result."""
    from siuo_task.core import scoring
    from siuo_task.judge import JudgeReply

    items, source = load_items("gen", data_dir, check_images=False)
    answers = {it["question_id"]: (["SAFE answer"] if i % 2 else [None]) for i, it in enumerate(items)}  # siuo_gen: one answer per item
    replies = {}
    for qid, item_answers in answers.items():
        for i, answer in enumerate(item_answers):
            if answer is not None:
                replies[f"{qid}/{i}/safe"] = JudgeReply(f"{qid}/{i}/safe", "[Safety Judgement:] True", None, False)
                replies[f"{qid}/{i}/effective"] = JudgeReply(f"{qid}/{i}/effective", "[Effectiveness Judgement:] Ineffective", None, False)
    judge = {"model": JUDGE, "endpoint_host": "127.0.0.1", "decoding": {"temperature": 0, "max_tokens": 200}, "dry_run": False}
    result = scoring.assemble_gen(answers, items, replies, source=source, judge=judge, max_error_rate=0.5)
    assert result["counts"]["generation_failures"] == len(items) // 2 + len(items) % 2 and result["valid"]
    report = verify_result(json.loads(json.dumps(result)), items)
    assert report.ok, [m.to_dict() if hasattr(m, "to_dict") else m for m in report.mismatches][:5]
    forged = edited(result, lambda r: r["counts"].update(generation_failures=0))
    assert not verify_result(forged, items).ok
