"""Nothing a user gave is lost: an --out that is an input, a folder, a special file, a link or an
unwritable place is refused before any work (exit 2, the path named); export gives every model its
own file; every file written gets the user's umask."""

import json
import os
import stat

import pytest

from siuo_dev.testing import score_gen_args
from siuo_task.cli import main as siuo_main
from siuo_task.core.data import load_items
from siuo_task.core.layouts import LMMS_EVAL
from siuo_task.core.schema import SIUOOutputError, check_output_path, write_bytes_atomic, write_json_atomic

from .verify_helpers import FakeOpenAIServer, gen_answers, write_submission

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run(capsys, *args):
    capsys.readouterr()
    code = siuo_main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def mcqa_submission(data_dir, tmp_path):
    items = load_items("mcqa", data_dir, check_images=False)[0]
    return write_submission(items, "response_mcqa", {it["question_id"]: "(A)" for it in items}, tmp_path / "siuo_mcqa-m.json")


def _special(tmp_path, kind):
    """An existing path of ``kind`` at which nothing may be written, and how to see it is untouched."""
    path = tmp_path / f"special-{kind}.md"
    if kind == "folder":
        path.mkdir()
        return path, lambda: path.is_dir() and not any(path.iterdir())
    if kind == "fifo":
        os.mkfifo(path)
        return path, lambda: stat.S_ISFIFO(os.lstat(path).st_mode)
    if kind == "symlink":
        target = tmp_path / "target.md"
        target.write_text("keep me")
        path.symlink_to(target)
        return path, lambda: path.is_symlink() and target.read_text() == "keep me"
    if kind == "dangling symlink":
        path.symlink_to(tmp_path / "nowhere.md")
        return path, lambda: path.is_symlink() and not (tmp_path / "nowhere.md").exists()
    if kind == "device":
        return "/dev/null", lambda: stat.S_ISCHR(os.stat("/dev/null").st_mode)
    raise AssertionError(kind)


KINDS = ["folder", "fifo", "symlink", "dangling symlink", "device"]


# --------------------------------------------------------------------------------------- --out


def test_score_never_writes_over_its_input(data_dir, tmp_path, capsys, clean_env):
    items = load_items("gen", data_dir, check_images=False)[0]
    submission = write_submission(items, "responses", gen_answers(items), tmp_path / "siuo_gen-m.json")
    before = submission.read_bytes()
    os.link(submission, tmp_path / "hardlink.json")
    clean_env.setenv("SIUO_JUDGE_API_KEY", "sk-test")
    with FakeOpenAIServer() as server:
        for out in (submission, tmp_path / "hardlink.json"):
            code, _, err = run(capsys, *score_gen_args(submission, out, data_dir, server.url, cache=tmp_path / "c"))
            assert code == 2 and f"--out {out}: is also an input ({submission})" in err and "Traceback" not in err
        assert server.chat_calls == 0  # refused before any judge call
    assert submission.read_bytes() == before
    # the data files are inputs too
    copy = tmp_path / "data"
    import shutil

    shutil.copytree(data_dir, copy)
    release = (copy / "siuo_mcqa.json").read_bytes()
    mcqa = write_submission(load_items("mcqa", copy, check_images=False)[0], "response_mcqa", {}, tmp_path / "m.json")
    code, _, err = run(capsys, "score", "mcqa", mcqa, "--out", copy / "siuo_mcqa.json", "--data-dir", copy)
    assert code == 2 and "is also an input" in err and (copy / "siuo_mcqa.json").read_bytes() == release


@pytest.mark.parametrize("kind", KINDS)
def test_special_outputs_are_refused(kind, mcqa_submission, data_dir, tmp_path, capsys):
    path, untouched = _special(tmp_path, kind)
    code, _, err = run(capsys, "score", "mcqa", mcqa_submission, "--out", path, "--data-dir", data_dir)
    assert code == 2 and f"--out {path}: is " in err and "Traceback" not in err, err
    assert untouched()
    code, _, err = run(capsys, "report", mcqa_submission.with_name("nothing-read.json"), "--out", path)
    assert code == 2 and str(path) in err and untouched()
    if kind != "device":
        code, _, err = run(capsys, "agree", mcqa_submission, mcqa_submission, "--json", path)
        assert code == 2 and str(path) in err and untouched()


def test_unwritable_outputs_are_refused_before_any_work(mcqa_submission, data_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out in (blocker / "r.json", blocker / "deeper" / "r.md"):
        command = (
            ["report", mcqa_submission, "--out", out]
            if out.suffix == ".md"
            else ["score", "mcqa", mcqa_submission, "--out", out, "--data-dir", data_dir]
        )
        code, _, err = run(capsys, *command)
        assert code == 2 and f"{blocker} is not a folder" in err and "Traceback" not in err, err
    if not IS_ROOT:  # root writes anywhere: the permission bits can't be tested as root
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, err = run(capsys, "score", "mcqa", mcqa_submission, "--out", locked / "r.json", "--data-dir", data_dir)
        assert code == 2 and "is not writable" in err


def test_report_never_writes_over_an_input(mcqa_submission, data_dir, tmp_path, capsys):
    result = tmp_path / "result.html"  # a result file whose name is the report's
    assert run(capsys, "score", "mcqa", mcqa_submission, "--out", result, "--data-dir", data_dir)[0] == 0
    before = result.read_bytes()
    code, _, err = run(capsys, "report", result, "--out", result)
    assert code == 2 and "is also an input" in err and result.read_bytes() == before
    # a picture written beside a Markdown report counts too
    picture = tmp_path / "r_categories.png"
    picture.write_bytes(before)
    code, _, err = run(capsys, "report", f"m={picture}", "--out", tmp_path / "r.md")
    assert code == 2 and f"{picture}: is also an input" in err and picture.read_bytes() == before


def test_the_atomic_writer_replaces_only_regular_files(tmp_path):
    for kind in ("folder", "fifo", "symlink", "dangling symlink"):
        path, untouched = _special(tmp_path, kind)
        with pytest.raises(SIUOOutputError, match="not a regular file; refusing to replace it"):
            write_bytes_atomic(path, b"x")
        assert untouched()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    regular = write_json_atomic(tmp_path / "sub" / "r.json", {"a": 1})  # the folder is made
    assert json.loads(regular.read_text()) == {"a": 1}
    assert check_output_path(regular, [tmp_path / "other.json"]) == regular  # an earlier output may be replaced


# ---------------------------------------------------------------------------------------- export


def _harness_run(root, folder, model_args, answers, stamp="20261201_000000"):
    """A harness model folder by hand: a results file and the logged MCQA samples (no SIUO file)."""
    model = root / folder
    model.mkdir(parents=True)
    results = {"results": {"siuo_mcqa": {"alias": "siuo_mcqa", "accuracy,none": 25.0}}, "config": {"model": "hf", "model_args": model_args}}
    (model / f"{stamp}_results.json").write_text(json.dumps(results))
    rows = [{"doc_id": i, "accuracy": {"question_id": qid, "response": answer}} for i, (qid, answer) in enumerate(answers.items())]
    (model / LMMS_EVAL.samples_name(model / f"{stamp}_results.json", "siuo_mcqa")).write_text("\n".join(map(json.dumps, rows)))
    return model


def test_export_gives_every_model_its_own_file(data_dir, tmp_path, capsys):
    items = load_items("mcqa", data_dir, check_images=False)[0]
    answers_a = {it["question_id"]: "(A)" for it in items}
    answers_b = {it["question_id"]: None if i % 2 else "(B)" for i, it in enumerate(items)}  # nulls: answers never given
    run_dir = tmp_path / "out"
    _harness_run(run_dir, "orga__Model", "pretrained=orga/Model", answers_a)
    _harness_run(run_dir, "orgb__Model", "pretrained=orgb/Model", answers_b)
    code, out, err = run(capsys, "export", run_dir, "--to", "official", "--data-dir", data_dir)
    assert code == 0, err
    files = sorted(p.name for p in (run_dir / "official").iterdir())
    assert files == ["siuo_mcqa-orga_Model.json", "siuo_mcqa-orgb_Model.json"]
    b = json.loads((run_dir / "official" / "siuo_mcqa-orgb_Model.json").read_text())
    assert [r["response_mcqa"] for r in b[:3]] == ["(B)", None, "(B)"]
    code, out, err = run(capsys, "verify", run_dir / "official" / "siuo_mcqa-orgb_Model.json", "--data-dir", data_dir)
    assert code == 0, out + err
    # again: an earlier export is replaced, nothing else
    assert run(capsys, "export", run_dir, "--to", "official", "--data-dir", data_dir)[0] == 0
    stranger = run_dir / "official" / "siuo_mcqa-orga_Model.json"
    stranger.write_text("my notes")
    code, _, err = run(capsys, "export", run_dir, "--to", "official", "--data-dir", data_dir)
    assert code == 2 and f"{stranger}: exists and is not an official submission file" in err and stranger.read_text() == "my notes"
    assert not (run_dir / "official" / "siuo_mcqa-orgb_Model.json").read_text() == ""  # nothing half-written


def test_export_names_that_would_collide_get_a_hash_each(data_dir, tmp_path, capsys):
    items = load_items("mcqa", data_dir, check_images=False)[0]
    answers = {it["question_id"]: "(C)" for it in items}
    run_dir = tmp_path / "out"
    _harness_run(run_dir, "a", "pretrained=orga/Model", answers)
    _harness_run(run_dir, "b", "pretrained=orga_Model", answers)
    out = tmp_path / "exported"
    code, _, err = run(capsys, "export", run_dir, "--to", "official", "--data-dir", data_dir, "--out", out)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and all(
        n.startswith("siuo_mcqa-orga_Model-") and len(n) == len("siuo_mcqa-orga_Model-12345678.json") for n in names
    )
    code, _, err = run(capsys, "export", run_dir, "--to", "official", "--data-dir", data_dir, "--out", out / names[0])
    assert code == 2 and "not a folder" in err


# ----------------------------------------------------------------------------------------- umask


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_users_umask(umask, mode, mcqa_submission, data_dir, tmp_path, capsys):
    old = os.umask(umask)
    try:
        assert run(capsys, "score", "mcqa", mcqa_submission, "--out", tmp_path / "r.json", "--data-dir", data_dir)[0] == 0
        assert run(capsys, "report", tmp_path / "r.json", "--out", tmp_path / "r.html")[0] == 0
        cache_entry = write_bytes_atomic(tmp_path / "cache" / "ab" / "abcd.json", b"{}")  # the judge cache's writer
        run_dir = tmp_path / "out"
        _harness_run(run_dir, "m", "pretrained=org/m", {1001: "(A)"})
        assert run(capsys, "export", run_dir, "--to", "official", "--data-dir", data_dir)[0] == 0
        written = [tmp_path / "r.json", tmp_path / "r.html", cache_entry, run_dir / "official" / "siuo_mcqa-org_m.json"]
    finally:
        os.umask(old)
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {str(p): oct(mode) for p in written}


def test_a_refused_cache_entry_is_a_failed_write_not_a_crash(tmp_path, caplog):
    """The judge cache treats a path it may not replace as any write that failed: logged, judging goes on."""
    from siuo_task.judge.cache import ReplyCache

    cache = ReplyCache(str(tmp_path))
    key = "ab" + "0" * 62
    (tmp_path / "ab" / f"{key}.json").mkdir(parents=True)
    with caplog.at_level("WARNING", logger="siuo_task.judge"):
        cache.put(key, {"text": "x"})
    assert "could not write a cache entry (SIUOOutputError)" in caplog.text
    assert issubclass(SIUOOutputError, OSError) and issubclass(SIUOOutputError, ValueError)
