"""`siuo report`, `siuo export` and `siuo agree` on real lmms-eval output.

A module fixture runs the real lmms-eval CLI twice (two fake models with different behaviour, one
fake judge) into ONE output folder, exactly as a user comparing two models would; the tests read
those files. Expected numbers are derived from the fake models' answer rules below.
"""

import base64
import copy
import datetime as dt
import html as htmlmod
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from siuo_dev.fake_judge_server import EFFECTIVENESS_PREFIX, MCQA_MARKER, SAFETY_PREFIX, FakeOpenAIServer, default_responder, prompt_text
from siuo_dev.lmms_eval_runs import openai_model_args
from siuo_task.cli import main as siuo_main
from siuo_task.core.data import load_items
from siuo_task.core.schema import PROTOCOL_VERSION
from siuo_task.core.scoring import assemble_gen, score_mcqa
from siuo_task.judge import JudgeReply
from siuo_task.results.agree import agreement, format_agreement
from siuo_task.results.io import ModelRecord, ReportInputError, load_records
from siuo_task.results.release import ReleaseItems
from siuo_task.results.report.figures import capability_figure, category_figure
from siuo_task.results.report.model import PAPER_LABEL, PAPER_ROWS, SAME_PROVENANCE, build_report, comparability_notes
from siuo_task.results.report.render import to_markdown

from .conftest import PYTHON, harness_env

MODELS = ("fake-a", "fake-b")
LIMIT = 40  # the first 40 items: self-harm, dangerous behavior and a few morality items
JUDGE = "fake-judge"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# A git clone of the official SIUO repository (its index.html holds the published table), when one is at hand.
OFFICIAL_REPO = Path(os.environ.get("SIUO_OFFICIAL_REPO", "") or "/nonexistent")


# --------------------------------------------------------------------------- the two fake models


def gen_answer(model, qid):
    if model == "fake-a":
        if qid % 3 == 0:
            return "UNSAFE advice"
        return "SAFE but INEFFECTIVE" if qid % 5 == 0 else "SAFE helpful answer"
    return "UNSAFE advice" if qid % 2 == 0 else "SAFE helpful answer"


def mcqa_answer(model, item):
    if model == "fake-a" and item["question_id"] % 2:
        return f"({item['correct_option']})"
    wrong = next(c for c in "ABCD" if c != item["correct_option"])
    return f"({wrong})" if model == "fake-a" else "(A)"


def make_responder(data_dir):
    mcqa = {item["question"]: item for item in load_items("mcqa", data_dir, check_images=False)[0]}
    gen = {item["question"]: item for item in load_items("gen", data_dir, check_images=False)[0]}

    def respond(body):
        text = prompt_text(body)
        if text.lstrip().startswith((SAFETY_PREFIX, EFFECTIVENESS_PREFIX)):
            return default_responder(body)
        model = body.get("model")
        if MCQA_MARKER in text:
            return mcqa_answer(model, mcqa[text.split("Qusetion: ", 1)[1].split("\nOption:\n", 1)[0]])
        return gen_answer(model, gen[text.strip()]["question_id"])

    return respond


def expected(model, data_dir):
    """Safe / effective / safe & effective / accuracy rates derived from the answer rules."""
    gen_items = load_items("gen", data_dir, check_images=False)[0][:LIMIT]
    mcqa_items = load_items("mcqa", data_dir, check_images=False)[0][:LIMIT]
    safe = [0 if "UNSAFE" in gen_answer(model, i["question_id"]) else 1 for i in gen_items]
    effective = [0 if "INEFFECTIVE" in gen_answer(model, i["question_id"]) else 1 for i in gen_items]
    correct = [int(mcqa_answer(model, i) == f"({i['correct_option']})") for i in mcqa_items]
    both = [s * e for s, e in zip(safe, effective)]
    # plain arithmetic (every item has a verdict here): share of 1s as a percentage, two decimals
    return {
        "safe": round(100 * sum(safe) / len(safe), 2),
        "effective": round(100 * sum(effective) / len(effective), 2),
        "safe_effective": round(100 * sum(both) / len(both), 2),
        "accuracy": round(100 * sum(correct) / len(correct), 2),
    }


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """Both models through the real lmms-eval CLI into one output folder; the fake server stays up."""
    root = tmp_path_factory.mktemp("report_run")
    out = root / "out"
    with FakeOpenAIServer(responder=make_responder(data_dir)) as server:
        for model in MODELS:
            env = {
                "SIUO_DATA_DIR": str(data_dir),
                "OPENAI_API_KEY": "dummy",
                "SIUO_JUDGE_BASE_URL": server.url,
                "SIUO_JUDGE_API_KEY": "x",
                "SIUO_JUDGE_CACHE": str(root / "cache"),
                "SIUO_JUDGE_MODEL": JUDGE,
            }
            cmd = [
                PYTHON,
                "-m",
                "lmms_eval",
                "--model",
                "openai",
                "--model_args",
                openai_model_args(server.url, model=model),
                "--tasks",
                "siuo",
                "--limit",
                str(LIMIT),
                "--output_path",
                str(out),
                "--log_samples",
            ]
            proc = subprocess.run(cmd, env=harness_env(env), capture_output=True, text=True, timeout=600)
            assert list((out / model).glob("*_results.json")), (proc.stdout + proc.stderr)[-3000:]
        yield {"out": out, "url": server.url, "data_dir": data_dir, "root": root}


def siuo_path_of(out, model, task):
    """The SIUO per-item file of one model's run: beside its results file, named after it."""
    (results,) = sorted((out / model).glob("*_results.json"))
    path = results.with_name(results.name.replace("_results.json", f"_siuo_{task}.json"))
    assert path.is_file(), sorted(p.name for p in (out / model).iterdir())
    return path


def siuo_file_of(out, model, task):
    result = json.loads(siuo_path_of(out, model, task).read_text())
    assert result["task"] == task and f"model_version={model}," in result["provenance"]["harness"]["model_args"]
    return result


# ----------------------------------------------------------------------------------- loading


@pytest.mark.e2e
def test_records_pair_each_model_with_its_own_siuo_files(run):
    records = load_records([str(run["out"])])
    assert [r.name for r in records] == list(MODELS)
    for record in records:
        want = expected(record.name, run["data_dir"])
        assert record.gen == siuo_file_of(run["out"], record.name, "siuo_gen")
        assert record.mcqa == siuo_file_of(run["out"], record.name, "siuo_mcqa")
        assert {k: record.gen["metrics"][k] for k in ("safe", "effective", "safe_effective")} == {
            k: want[k] for k in ("safe", "effective", "safe_effective")
        }
        assert record.mcqa["metrics"]["accuracy"] == want["accuracy"]
        assert [i["answers"] for i in record.gen["items"]] == [[gen_answer(record.name, i["question_id"])] for i in record.gen["items"]]
        assert not record.notes
    # the two models really differ, so a wrong pairing could not pass
    assert expected("fake-a", run["data_dir"]) != expected("fake-b", run["data_dir"])
    # a single model folder, a single results file and LABEL=PATH give the same record
    model_dir = run["out"] / "fake-b"
    results_file = next(model_dir.glob("*_results.json"))
    for arg in (str(model_dir), str(results_file)):
        (one,) = load_records([arg])
        assert one.name == "fake-b" and one.gen == records[1].gen
    (labelled,) = load_records([f"my-model={model_dir}"])
    assert labelled.name == "my-model"


def _set_time(path, result, when):
    """Give a SIUO file a misleading creation time, in its provenance and as its mtime."""
    result["provenance"]["created"] = when.isoformat()
    path.write_text(json.dumps(result))
    os.utime(path, (when.timestamp(), when.timestamp()))


@pytest.mark.e2e
def test_pairing_follows_the_link_alone(run, tmp_path):
    """Times that would mislead any heuristic (creation times and mtimes swapped between the models,
    a second run of one model whose file is older than the first's) change nothing: each harness
    results file is paired with the file named after it."""
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    early, late = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc)
    for model, when in (("fake-a", late), ("fake-b", early)):
        for task in ("siuo_gen", "siuo_mcqa"):
            path = siuo_path_of(out, model, task)
            _set_time(path, json.loads(path.read_text()), when)
    # a later run of fake-a (same model arguments, same answers) whose numbers differ - and whose
    # per-item file claims to be the oldest of all
    (first,) = sorted((out / "fake-a").glob("*_results.json"))
    harness = json.loads(first.read_text())
    harness["date"] = "20991231_235959"
    harness["results"]["siuo_gen"]["safe,none"] = 12.34
    second = first.with_name("20991231_235959_results.json")
    second.write_text(json.dumps(harness))
    later_gen = json.loads(siuo_path_of(run["out"], "fake-a", "siuo_gen").read_text())
    later_gen["metrics"]["safe"] = 12.34
    later_path = second.with_name("20991231_235959_siuo_siuo_gen.json")
    _set_time(later_path, later_gen, dt.datetime(1999, 1, 1, tzinfo=dt.timezone.utc))
    mcqa = siuo_path_of(run["out"], "fake-a", "siuo_mcqa")
    shutil.copy(mcqa, second.with_name("20991231_235959_siuo_siuo_mcqa.json"))

    records = {r.name: r for r in load_records([str(out)])}
    assert records["fake-b"].gen == json.loads(siuo_path_of(out, "fake-b", "siuo_gen").read_text())
    assert records["fake-a"].gen["metrics"]["safe"] == 12.34  # the latest run, with its own file
    assert str(later_path) in records["fake-a"].sources and not records["fake-a"].notes
    (only_first,) = load_records([str(first)])
    assert only_first.gen["metrics"] == siuo_file_of(run["out"], "fake-a", "siuo_gen")["metrics"]
    assert not only_first.notes


@pytest.mark.e2e
def test_old_layout_folders_still_read(run, tmp_path):
    """Earlier versions wrote every model's files into <out>/siuo/<task>_<time>_<pid>.json."""
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    (out / "siuo").mkdir()
    for i, path in enumerate(sorted(out.glob("*/*_siuo_*.json"))):
        task = json.loads(path.read_text())["task"]
        path.rename(out / "siuo" / f"{task}_20261127_1200{i:02d}_123456_{4000 + i}.json")
    records = load_records([str(out)])
    assert [r.name for r in records] == list(MODELS)
    for record in records:
        assert record.gen == siuo_file_of(run["out"], record.name, "siuo_gen") and not record.notes
        assert record.mcqa == siuo_file_of(run["out"], record.name, "siuo_mcqa")
    assert siuo_main(["export", str(out), "--to", "official", "--out", str(tmp_path / "official"), "--data-dir", str(run["data_dir"])]) == 0
    # two old files for the same model arguments: nothing is guessed, the run says so
    extra = next((out / "siuo").glob("siuo_gen_*.json"))
    shutil.copy(extra, out / "siuo" / "siuo_gen_20261128_000000_000000_9999.json")
    records = load_records([str(out)])
    ambiguous = [r for r in records if r.gen.get("headline_only")]
    assert len(ambiguous) == 1 and any("none is chosen" in note for note in ambiguous[0].notes)


@pytest.mark.e2e
def test_headline_only_when_the_siuo_files_are_gone(run, tmp_path):
    copy_dir = tmp_path / "out"
    shutil.copytree(run["out"], copy_dir)
    for path in copy_dir.glob("*/*_siuo_*.json"):
        path.unlink()
    records = load_records([str(copy_dir)])
    want = expected("fake-a", run["data_dir"])
    assert records[0].gen["headline_only"] and records[0].gen["metrics"]["safe"] == want["safe"]
    assert any("no SIUO per-item file" in note for note in records[0].notes)
    assert siuo_main(["report", str(copy_dir), "--out", str(tmp_path / "r.md")]) == 0
    assert "headline numbers only" in (tmp_path / "r.md").read_text()
    assert siuo_main(["report", str(copy_dir), "--out", str(tmp_path / "r.png")]) == 2  # nothing per category to draw


NO_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None  # as if it were not installed: any import of it fails
from siuo_task.cli import main
code = main(sys.argv[1:])
assert not [m for m in sys.modules if m.startswith("matplotlib") and sys.modules[m] is not None]
sys.exit(code)
"""


def test_markdown_report_without_matplotlib(data_dir, tmp_path):
    items = load_items("gen", data_dir, check_images=False)[0][:10]
    answers = {item["question_id"]: [f"answer {item['question_id']}"] for item in items}
    result = _fabricated(items, answers, [1, 0] * 5, [1] * 10, "judge-a")
    (tmp_path / "gen.json").write_text(json.dumps(result))

    def report(*args):
        return subprocess.run(
            [PYTHON, "-c", NO_MATPLOTLIB, "report", str(tmp_path / "gen.json"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=harness_env(),
        )

    proc = report()
    assert proc.returncode == 0, proc.stderr
    assert "| Model |" in proc.stdout and "50.00" in proc.stdout and "judge-a" in proc.stdout
    proc = report("--out", str(tmp_path / "r.md"))
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib is not installed" in proc.stderr and "| Model |" in (tmp_path / "r.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.json", "r.md"]  # no pictures
    proc = report("--out", str(tmp_path / "r.png"))
    assert proc.returncode == 2 and "matplotlib is not installed" in proc.stderr


def test_report_refuses_folders_without_results(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert siuo_main(["report", str(tmp_path / "empty")]) == 2
    assert "no SIUO results here" in capsys.readouterr().err
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    assert siuo_main(["report", str(tmp_path / "x.json")]) == 2
    assert "neither a SIUO result" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- rendering


@pytest.mark.e2e
def test_markdown_tables_numbers_and_picture(run, tmp_path):
    out = tmp_path / "report.md"
    assert siuo_main(["report", str(run["out"]), "--out", str(out), "--paper"]) == 0
    text = out.read_text()
    records = load_records([str(run["out"])])
    for record in records:
        row = next(line for line in text.splitlines() if line.startswith(f"| {record.name} |"))
        for name in ("safe", "effective", "safe_effective"):
            lo, hi = record.gen["ci95"][name]
            assert f"{record.gen['metrics'][name]:.2f} [{lo:.2f}–{hi:.2f}]" in row
        lo, hi = record.mcqa["ci95"]["accuracy"]
        assert f"{record.mcqa['metrics']['accuracy']:.2f} [{lo:.2f}–{hi:.2f}]" in row
        assert f"| {JUDGE} (protocol {PROTOCOL_VERSION}) |" in row and "| 0 / 0 |" in row
    # per-category table: one row per category present, one column per model
    cats = {i["category"] for i in records[0].gen["items"]}
    section = text.split("### Safe by category", 1)[1].split("###", 1)[0]
    assert section.count("\n| ") == 1 + len(cats) and "fake-a | fake-b" in section
    # same provenance: said so, no mismatch sentence
    assert SAME_PROVENANCE in text
    # the paper rows are labelled as such
    assert PAPER_LABEL in text and "| GPT-4V(ision) | 53.29 | 69.46 | 23.35 | 38.92 |" in text
    # the picture beside it
    png = tmp_path / "report_categories.png"
    assert f"]({png.name})" in text
    from PIL import Image

    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 400 and img.height > 200


@pytest.mark.e2e
def test_picture_legend_names_every_model(run, tmp_path):
    records = load_records([str(run["out"])])
    fig = category_figure(records)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(MODELS)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Safe", "Effective", "Safe & Effective", "MCQA accuracy"]
    # bar lengths are the per-category rates of each model (first panel: Safe)
    cats = [c for c in records[0].gen["by_category"]]
    widths = sorted(round(p.get_width(), 2) for p in fig.axes[0].patches)
    assert widths == sorted(r.gen["by_category"][c]["safe"] for r in records for c in cats)
    out = tmp_path / "only.png"
    assert siuo_main(["report", str(run["out"]), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _chromium(args, tmp_path):
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


PROBE = """<script>window.addEventListener('load', function () {
  document.body.setAttribute('data-probe', JSON.stringify({
    images: Array.from(document.images).map(function (i) { return [i.id, i.naturalWidth, i.naturalHeight, i.complete]; }),
    tables: Array.from(document.querySelectorAll('table')).map(function (t) { return t.id; }),
    headline: Array.from(document.querySelectorAll('#headline tr')).map(function (r) { return r.cells[0].innerText; })
  }));
});</script>"""


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)")
def test_html_is_one_self_contained_file_that_chromium_renders(run, tmp_path):
    out = tmp_path / "report.html"
    assert siuo_main(["report", str(run["out"]), "--out", str(out), "--paper"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # nothing beside it
    page = out.read_text()
    # no external resource of any kind
    assert not re.search(r"<(link|script|iframe)\b", page, re.I)
    assert not re.search(r"""\b(src|href)\s*=\s*(?!["']data:)""", page, re.I)
    assert "url(" not in page
    # the picture is inline and decodes to the figure's PNG
    b64 = re.search(r'id="fig-categories"[^>]*src="data:image/png;base64,([^"]+)"', page).group(1)
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
        width, height = img.size
    # judge provenance is on the page
    assert f"{JUDGE} at 127.0.0.1" in page and "prompt hashes" in page
    # what a browser shows: probe a copy of the page after load
    probe = tmp_path / "probe" / "report.html"
    probe.parent.mkdir()
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    proc = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path)
    found = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert found, (proc.stdout[-2000:], proc.stderr[-2000:])
    state = json.loads(htmlmod.unescape(found.group(1)))
    assert ["fig-categories", width, height, True] in state["images"]
    assert {"headline", "paper", "category-0", "category-3"} <= set(state["tables"])
    assert state["headline"] == ["Model", *MODELS, "A − B (paired)"]  # two models: the paired column
    shot = tmp_path / "shot.png"
    proc = _chromium(["--window-size=1280,2000", f"--screenshot={shot}", out.as_uri()], tmp_path)
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]


def test_paper_rows_are_the_published_numbers():
    """Every number we print as the paper's is on the official project page (when a local mirror exists)."""
    gpt4v = next(r for r in PAPER_ROWS if r[0] == "GPT-4V(ision)")
    assert gpt4v[1:] == (53.29, 69.46, 23.35, 38.92)  # quoted in the issue
    if not (OFFICIAL_REPO / "HEAD").exists():
        pytest.skip("no clone of the official SIUO repository: set SIUO_OFFICIAL_REPO to check the paper rows against its page")
    page = subprocess.run(["git", "-C", str(OFFICIAL_REPO), "show", "HEAD:index.html"], capture_output=True, text=True, check=True).stdout
    cells = re.findall(r"<td[^>]*>\s*(?:<b>)?\s*([0-9.]+|-)\s*(?:</b>)?\s*</td>", page)
    text = re.sub(r"<[^>]+>", " ", page)
    for name, *values in PAPER_ROWS:
        assert name in text
        for v in values:
            assert (f"{v:.2f}" in cells) if v is not None else ("-" in cells)


# --------------------------------------------------------------------------- comparability notes


@pytest.mark.e2e
def test_provenance_mismatch_is_said_in_plain_words(run, tmp_path):
    gen = siuo_file_of(run["out"], "fake-b", "siuo_gen")
    mcqa = siuo_file_of(run["out"], "fake-b", "siuo_mcqa")
    other_gen, other_mcqa = copy.deepcopy(gen), copy.deepcopy(mcqa)
    for result in (other_gen, other_mcqa):
        prov = result["provenance"]
        prov["harness"]["model_args"] = prov["harness"]["model_args"].replace("model_version=fake-b", "model_version=fake-c")
        prov["harness"]["gen_kwargs"] = "temperature=0.7"
        prov["dataset"] = {"origin": "huggingface", "data_dir": "/hub", "hf_repo": "sinwang/SIUO", "hf_revision": "0123abc"}
    other_gen["provenance"]["judge"]["model"] = "gpt-4o-2024-08-06"
    other_gen["provenance"]["judge"]["decoding"] = {"temperature": 0.5, "max_tokens": 200}
    other_gen["provenance"]["prompt_hashes"]["safety_judge"] = "ffffffffffffffff"
    other_mcqa["provenance"]["mcqa_policy"] = "strict"
    (tmp_path / "gen.json").write_text(json.dumps(other_gen))
    (tmp_path / "mcqa.json").write_text(json.dumps(other_mcqa))
    records = load_records([str(run["out"] / "fake-b"), str(tmp_path / "gen.json"), str(tmp_path / "mcqa.json")])
    assert [r.name for r in records] == ["fake-b", "fake-c"]
    notes = comparability_notes(records)
    joined = "\n".join(notes)
    judge_note = next(n for n in notes if n.startswith("Different judge model for generation"))
    assert f"fake-b: {JUDGE}" in judge_note and "fake-c: gpt-4o-2024-08-06" in judge_note and "not directly comparable" in judge_note
    assert "Different judge decoding settings for generation" in joined and "temperature=0.5" in joined
    assert "Different safety judge prompt (hash)" in joined and "ffffffffffffffff" in joined
    assert "Different effectiveness judge prompt" not in joined  # same hash: no sentence
    for setting in ("generation", "MCQA"):
        assert f"Different model decoding settings for {setting}" in joined and "--gen_kwargs temperature=0.7" in joined
        assert f"Different dataset for {setting}" in joined and "revision 0123abc" in joined
    assert "Different MCQA scoring policy for MCQA" in joined and "strict" in joined
    # next to the numbers: right under the headline table, before the pictures
    text = to_markdown(build_report(records), {})
    table_end = text.index("| fake-c |")
    assert table_end < text.index(judge_note) < text.index("## By category")
    # identical provenance -> no mismatch sentence at all
    assert comparability_notes(load_records([str(run["out"])])) == []


@pytest.mark.e2e
def test_model_class_decoding_is_part_of_the_decoding_settings(run, tmp_path):
    """A run whose model class decoded otherwise (harness.model_decoding) is flagged next to the numbers."""
    mcqa = copy.deepcopy(siuo_file_of(run["out"], "fake-b", "siuo_mcqa"))
    prov = mcqa["provenance"]
    prov["harness"]["model_args"] = prov["harness"]["model_args"].replace("model_version=fake-b", "model_version=fake-c")
    prov["harness"]["model_decoding"] = {
        "model_class": "lmms_eval.models.chat.vllm.VLLM",
        "max_new_tokens": 4096,
        "task": {"max_new_tokens": 5, "top_p": None},
    }
    (tmp_path / "mcqa.json").write_text(json.dumps(mcqa))
    records = load_records([str(run["out"] / "fake-b"), str(tmp_path / "mcqa.json")])
    note = next(n for n in comparability_notes(records) if n.startswith("Different model decoding settings for MCQA"))
    assert "fake-c:" in note and "the model class used max_new_tokens=4096" in note


# --------------------------------------------------------------------------------- export


@pytest.mark.e2e
def test_export_to_official_and_score_back_identically(run, tmp_path, clean_env):
    clean_env.setenv("SIUO_JUDGE_API_KEY", "x")
    official = tmp_path / "official"
    assert siuo_main(["export", str(run["out"]), "--to", "official", "--out", str(official), "--data-dir", str(run["data_dir"])]) == 0
    assert sorted(p.name for p in official.iterdir()) == sorted(f"siuo_{s}-{m}.json" for s in ("gen", "mcqa") for m in MODELS)
    release_gen = json.loads((run["data_dir"] / "siuo_gen.json").read_text())
    release_mcqa = json.loads((run["data_dir"] / "siuo_mcqa.json").read_text())
    for model in MODELS:
        rows = json.loads((official / f"siuo_gen-{model}.json").read_text())
        assert rows == [{**item, "responses": [gen_answer(model, item["question_id"])]} for item in release_gen[:LIMIT]]
        rows = json.loads((official / f"siuo_mcqa-{model}.json").read_text())
        assert rows == [{**item, "response_mcqa": mcqa_answer(model, item)} for item in release_mcqa[:LIMIT]]
        # score the exported files: a fresh judge cache, so the judge grades again
        judge_args = ["--judge-base-url", run["url"], "--judge-model", JUDGE, "--cache-dir", str(tmp_path / f"c-{model}"), "--quiet"]
        for setting, extra in (("gen", judge_args), ("mcqa", [])):
            scored_path = tmp_path / f"{setting}-{model}.json"
            assert (
                siuo_main(
                    [
                        "score",
                        setting,
                        str(official / f"siuo_{setting}-{model}.json"),
                        "--out",
                        str(scored_path),
                        "--data-dir",
                        str(run["data_dir"]),
                        *extra,
                    ]
                )
                == 0
            )
            scored = json.loads(scored_path.read_text())
            original = siuo_file_of(run["out"], model, f"siuo_{setting}")
            assert scored["provenance"]["harness"]["name"] == "siuo score"
            for key in set(original) - {"provenance"}:
                assert scored[key] == original[key], (model, setting, key)
    # the exported results and the run give the same report rows
    assert (
        siuo_main(["report", str(tmp_path / "gen-fake-a.json"), str(tmp_path / "mcqa-fake-a.json"), "--out", str(tmp_path / "a.md")]) == 0
    )
    assert siuo_main(["export", str(run["out"]), "--to", "official", "--model", "nobody", "--out", str(tmp_path / "x")]) == 2


@pytest.mark.e2e
def test_export_without_logged_samples_uses_the_siuo_files(run, tmp_path):
    copy_dir = tmp_path / "out"
    shutil.copytree(run["out"], copy_dir)
    for path in copy_dir.glob("*/*_samples_*.jsonl"):
        path.unlink()
    assert siuo_main(["export", str(copy_dir / "fake-b"), "--to", "official", "--data-dir", str(run["data_dir"])]) == 0
    rows = json.loads((copy_dir / "fake-b" / "official" / "siuo_gen-fake-b.json").read_text())
    assert [r["responses"] for r in rows] == [[gen_answer("fake-b", r["question_id"])] for r in rows] and len(rows) == LIMIT
    rows = json.loads((copy_dir / "fake-b" / "official" / "siuo_mcqa-fake-b.json").read_text())
    assert [r["response_mcqa"] for r in rows] == [mcqa_answer("fake-b", r) for r in rows]


# ---------------------------------------------------------------------------------- agreement


def _fabricated(items, answers, safe, effective, judge, universe=None):
    """A gen result graded by a judge whose verdicts are given per item (None: no verdict); ``universe``:
    the data's items (default ``items``), for a result that answered only ``items`` of them."""

    def text(kind, vote):
        if vote is None:
            return "I cannot grade this."
        if kind == "safe":
            return f"[Safety Judgement:] {'True' if vote else 'False'}"
        return f"[Effectiveness Judgement:] {'Very Effective' if vote else 'Ineffective'}"

    replies = {}
    for item, s, e in zip(items, safe, effective):
        qid = item["question_id"]
        replies[f"{qid}/0/safe"] = JudgeReply(f"{qid}/0/safe", text("safe", s), None, False)
        replies[f"{qid}/0/effective"] = JudgeReply(f"{qid}/0/effective", text("effective", e), None, False)
    recorded = {"model": judge, "endpoint_host": "127.0.0.1:9", "decoding": {"temperature": 0.0}, "dry_run": False}
    return assemble_gen(answers, universe or items, replies, judge=recorded)


def _kappa_by_hand(a, b):
    """Cohen's kappa from its definition: (p_o - p_e) / (1 - p_e)."""
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    p_e = (sum(a) / n) * (sum(b) / n) + (1 - sum(a) / n) * (1 - sum(b) / n)
    return (p_o - p_e) / (1 - p_e)


def test_agree_on_two_fabricated_judges(data_dir, tmp_path, capsys):
    items = load_items("gen", data_dir, check_images=False)[0][:10]
    answers = {item["question_id"]: [f"answer {item['question_id']}"] for item in items}
    safe_a = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    safe_b = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]  # disagrees on items 5 and 10
    eff_a = [1, 1, 1, 1, 1, 1, 1, 0, 0, None]  # judge A had no verdict on item 10
    eff_b = [1, 1, 0, 1, 1, 1, 1, 0, 0, 1]
    a = _fabricated(items, answers, safe_a, eff_a, "judge-a")
    b = _fabricated(items, answers, safe_b, eff_b, "judge-b")
    report = agreement(a, b, "A", "B")
    safe = report["metrics"]["safe"]
    assert safe["n"] == 10 and safe["agreement"] == 80.0
    assert safe["kappa"] == round(_kappa_by_hand(safe_a, safe_b), 4) == 0.6
    eff = report["metrics"]["effective"]
    assert eff["n"] == 9 and eff["without_verdict"] == [items[9]["question_id"]]
    assert eff["kappa"] == round(_kappa_by_hand(eff_a[:9], eff_b[:9]), 4)
    both_a = [r["safe_effective"] for r in a["items"]]
    both_b = [r["safe_effective"] for r in b["items"]]
    kept = [i for i in range(10) if both_a[i] is not None and both_b[i] is not None]
    assert report["metrics"]["safe_effective"]["kappa"] == round(_kappa_by_hand([both_a[i] for i in kept], [both_b[i] for i in kept]), 4)
    disagreed = {(d["question_id"], d["metric"]) for d in report["disagreements"]}
    assert (items[4]["question_id"], "safe") in disagreed and (items[9]["question_id"], "safe") in disagreed
    assert (items[2]["question_id"], "effective") in disagreed
    assert len([d for d in report["disagreements"] if d["metric"] == "safe"]) == 2
    # through the CLI, with the JSON report
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert siuo_main(["agree", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json", str(tmp_path / "agree.json")]) == 0
    printed = capsys.readouterr().out
    assert "judge-a" in printed and "judge-b" in printed and re.search(r"^safe\s+10\s+80\.00\s+0\.600", printed, re.M)
    assert json.loads((tmp_path / "agree.json").read_text())["metrics"]["safe"]["kappa"] == 0.6
    n_dis = len(report["disagreements"])
    first = report["disagreements"][0]
    assert f"{n_dis} disagreement(s) (question_id, category, metric: A vs B):" in printed
    assert f"  {first['question_id']}  {first['category']}  {first['metric']}: {first['a']} vs {first['b']}" in printed
    cut = format_agreement(report, max_list=1).splitlines()
    assert cut[-2].startswith(f"  {first['question_id']}  ") and cut[-1] == f"  ... {n_dis - 1} more (use --json for all)"
    assert "more (use --json" not in format_agreement(report, max_list=n_dis)
    # different answers: refused, naming the item
    changed = dict(answers)
    changed[items[3]["question_id"]] = ["another answer"]
    c = _fabricated(items, changed, safe_b, eff_b, "judge-b")
    (tmp_path / "c.json").write_text(json.dumps(c))
    assert siuo_main(["agree", str(tmp_path / "a.json"), str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert "answers differ" in err and f"question_id={items[3]['question_id']}" in err
    # an MCQA result is refused too
    (tmp_path / "m.json").write_text(json.dumps({**a, "task": "siuo_mcqa"}))
    assert siuo_main(["agree", str(tmp_path / "a.json"), str(tmp_path / "m.json")]) == 2
    assert "needs generation results" in capsys.readouterr().err


# ------------------------------------------------------------------- safety vs capability (issue 8)


@pytest.mark.e2e
def test_safety_vs_capability_table_and_scatter(run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    capability = {"fake-a": 0.41, "fake-b": 0.57}
    for model, value in capability.items():
        # a later mmmu_val run of the same model into the same folder, in lmms-eval's results layout
        base = json.loads(next((out / model).glob("*_results.json")).read_text())
        base["results"] = {
            "mmmu_val": {"alias": "mmmu_val", "mmmu_acc,none": value, "mmmu_acc_stderr,none": "N/A", "mmmu_acc_pass_at_k,none": value}
        }
        base["date"] = "20991231_000000"
        (out / model / "20991231_000000_results.json").write_text(json.dumps(base))
    records = load_records([str(out)])
    assert [r.capability for r in records] == [{"mmmu_val": {"mmmu_acc": v, "mmmu_acc_pass_at_k": v}} for v in capability.values()]
    assert records[0].gen == siuo_file_of(run["out"], "fake-a", "siuo_gen")  # SIUO still paired with its own run
    report = build_report(records, capability="mmmu_val")
    assert report.capability_axis == ("mmmu_val", "mmmu_acc")
    rows = {row[0]: row for row in report.capability.rows}
    assert rows["fake-b"][-2] == "0.57" and rows["fake-a"][1].startswith(f"{records[0].gen['metrics']['safe']:.2f}")
    fig = capability_figure(records, "mmmu_val", "mmmu_acc")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(MODELS)
    points = {c.get_label(): (c.lines[0].get_xdata()[0], c.lines[0].get_ydata()[0], c.has_yerr) for c in ax.containers}
    assert points == {r.name: (capability[r.name], r.gen["metrics"]["safe"], True) for r in records}
    # the error bars span the SIUO 95% interval
    for container, record in zip(ax.containers, records):
        (segments,) = [coll.get_segments() for coll in container.lines[2]]
        assert [round(y, 2) for y in (segments[0][0][1], segments[0][1][1])] == record.gen["ci95"]["safe"]
    html_path = tmp_path / "r.html"
    assert siuo_main(["report", str(out), "--capability", "mmmu_val,mmmu_acc", "--out", str(html_path)]) == 0
    page = html_path.read_text()
    assert 'id="capability"' in page and 'id="fig-capability"' in page
    assert siuo_main(["report", str(out), "--capability", "mmmu_val", "--out", str(tmp_path / "r.md")]) == 0
    assert (tmp_path / "r_capability.png").stat().st_size > 5_000
    assert siuo_main(["report", str(out), "--capability", "mme"]) == 2


# ------------------------------------------------------------- verification and the paired row (issue 15)


def _mcqa_result(data_dir, correct_on, n=None):
    """An MCQA result scored by siuo_task.core.scoring: the right option on the items ``correct_on`` picks
    (by position), a wrong one elsewhere; ``n``: answers to the first n items only, as a --limit run."""
    items, source = load_items("mcqa", data_dir, check_images=False)
    responses = {}
    for i, item in enumerate(items[:n] if n else items):
        wrong = next(c for c in "ABCD" if c != item["correct_option"])
        responses[item["question_id"]] = f"({item['correct_option'] if correct_on(i) else wrong})"
    return score_mcqa(responses, items, source=source)


def _report_md(records, data_dir=None):
    release = ReleaseItems(str(data_dir), search=False) if data_dir else None
    return to_markdown(build_report(records, release=release), {})


def _row(text, first_cell):
    return next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))


def test_edited_headline_is_marked_not_verified(data_dir):
    result = _mcqa_result(data_dir, lambda i: i % 3 == 0)
    text = _report_md([ModelRecord("m-ok", mcqa=result)])
    assert "| verified |" in text and _row(text, "m-ok").endswith("| siuo_mcqa: verified |")
    tampered = copy.deepcopy(result)
    tampered["metrics"]["accuracy"] = 88.8
    text = _report_md([ModelRecord("m-edited", mcqa=tampered)])
    assert _row(text, "m-edited").endswith("| siuo_mcqa: NOT VERIFIED: 1 number differs (metrics.accuracy) |")
    assert f"metrics.accuracy: stored 88.8, recomputed {result['metrics']['accuracy']}" in text  # in the model notes
    # headline numbers only: not verifiable, not called tampered
    headline_only = {
        "task": "siuo_mcqa",
        "metrics": {"accuracy": 40.0, "unparsed": 0.0},
        "ci95": {},
        "counts": {"n": 167},
        "by_category": {},
        "items": [],
        "provenance": {},
        "headline_only": True,
    }
    text = _report_md([ModelRecord("m-headline", mcqa=headline_only)])
    assert "NOT VERIFIED: headline numbers only, no per-item records" in _row(text, "m-headline")
    assert "differs" not in text and "not verifiable - headline numbers only" in text
    with pytest.raises(ReportInputError, match="m-headline siuo_mcqa: NOT VERIFIED: headline numbers only"):
        build_report([ModelRecord("m-headline", mcqa=headline_only)], strict_verify=True)  # nothing to recompute


def test_strict_verify_refuses_what_does_not_recompute(data_dir, tmp_path, capsys, clean_env):
    clean_env.setenv("HF_HUB_CACHE", str(tmp_path / "no-hub-cache"))  # no data at hand unless --data-dir names it
    result = _mcqa_result(data_dir, lambda i: i % 3 == 0)
    (tmp_path / "ok.json").write_text(json.dumps(result))
    tampered = copy.deepcopy(result)
    tampered["by_category"]["privacy violation"]["accuracy"] = 99.0
    (tmp_path / "edited.json").write_text(json.dumps(tampered))
    invalid = dict(result, valid=False, invalid_reasons=["too many failed requests"])
    (tmp_path / "invalid.json").write_text(json.dumps(invalid))
    assert siuo_main(["report", f"good={tmp_path / 'ok.json'}", "--strict-verify"]) == 0
    assert "siuo_mcqa: verified" in capsys.readouterr().out
    assert siuo_main(["report", f"good={tmp_path / 'ok.json'}", f"bad={tmp_path / 'edited.json'}", "--strict-verify"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--strict-verify" in captured.err and "siuo verify" in captured.err
    assert "bad siuo_mcqa: NOT VERIFIED: 1 number differs (by_category.privacy violation.accuracy)" in captured.err
    assert "good" not in captured.err.split("refusing", 1)[1].split("Run `siuo verify`")[0]
    assert siuo_main(["report", f"bad={tmp_path / 'invalid.json'}", "--strict-verify"]) == 2
    assert "bad siuo_mcqa: NOT VERIFIED: marked invalid" in capsys.readouterr().err
    # without the flag: reported, and marked
    assert siuo_main(["report", f"bad={tmp_path / 'edited.json'}"]) == 0
    assert "NOT VERIFIED: 1 number differs" in capsys.readouterr().out
    # an incomplete (--limit) run is marked, not refused: its numbers are what its records say, once its
    # answer key is checked against the data (without the data, only a complete key can be checked)
    (tmp_path / "partial.json").write_text(json.dumps(_mcqa_result(data_dir, lambda i: True, n=10)))
    assert siuo_main(["report", f"partial={tmp_path / 'partial.json'}", "--strict-verify"]) == 2
    assert "items[].correct_option" in capsys.readouterr().err
    assert siuo_main(["report", f"partial={tmp_path / 'partial.json'}", "--strict-verify", "--data-dir", str(data_dir)]) == 0
    assert "siuo_mcqa: NOT VERIFIED: incomplete (10 of 167 items)" in capsys.readouterr().out


def test_two_models_get_the_paired_row(data_dir):
    """Hand-worked tables on 10 items.

    Safe (gen): both safe on 3 items, only A on 3, only B on 1, neither on 3. A - B = (3 - 1)/10 = +20 pp;
    exact McNemar: 4 discordant pairs, 2 * P(Bin(4, 1/2) <= 1) = 2 * 5/16 = 0.625. Newcombe: p1 = 0.6,
    p2 = 0.4, Wilson(6/10) = [0.31267, 0.83182], Wilson(4/10) = [0.16818, 0.68733], phi = (3*3 - 3*1)/sqrt(6*4*4*6)
    = 0.25; low = 0.2 - sqrt(0.28733^2 - 2*0.25*0.28733*0.28733 + 0.28733^2) = -0.15190,
    high = 0.2 + sqrt(0.23182^2 - 2*0.25*0.23182*0.23182 + 0.23182^2) = 0.48392.
    MCQA accuracy: both right on 5, only B on 4, neither on 1: A - B = -40 pp, p = 2 * (1/2)^4 = 0.125;
    p1 = 0.5, p2 = 0.9, phi = (5*1 - 0*4)/sqrt(5*5*9*1) = 1/3, interval [-64.84, -7.06].
    """
    universe = load_items("gen", data_dir, check_images=False)[0]
    items = universe[:10]
    answers = {item["question_id"]: [f"answer {item['question_id']}"] for item in items}
    gen_a = _fabricated(items, answers, [1, 1, 1, 1, 1, 1, 0, 0, 0, 0], [1] * 10, "judge-a", universe)
    gen_b = _fabricated(items, answers, [1, 1, 1, 0, 0, 0, 1, 0, 0, 0], [1] * 10, "judge-a", universe)
    mcqa_a = _mcqa_result(data_dir, lambda i: i < 5, n=10)
    mcqa_b = _mcqa_result(data_dir, lambda i: i < 9, n=10)
    text = _report_md([ModelRecord("model-a", gen=gen_a, mcqa=mcqa_a), ModelRecord("model-b", gen=gen_b, mcqa=mcqa_b)], data_dir)
    cells = _row(text, "A − B (paired)").split(" | ")
    assert cells[1] == "+20.00 pp [-15.19, +48.39], McNemar p=0.6250 (n=10)"
    assert cells[4] == "-40.00 pp [-64.84, -7.06], McNemar p=0.1250 (n=10)"
    assert "A = model-a, B = model-b" in text and "exact McNemar" in text
    # different judges: the row says why the two are not paired; one setting missing: said too
    gen_c = _fabricated(items, answers, [1] * 10, [1] * 10, "judge-c", universe)
    text = _report_md([ModelRecord("model-a", gen=gen_a, mcqa=mcqa_a), ModelRecord("model-c", gen=gen_c)], data_dir)
    cells = _row(text, "A − B (paired)").split(" | ")
    assert cells[1].startswith("not paired: A and B were not scored the same way (judge model: 'judge-a' vs 'judge-c'")
    assert cells[4] == "not paired: only model-a has MCQA results"
    # three models: no paired row
    text = _report_md([ModelRecord(n, gen=gen_a) for n in ("x", "y", "z")])
    assert "(paired)" not in text


# What the notes on VLMEvalKit's SIUO numbers must say (the report, its figure's footnote and the docs).
VLMEVALKIT_POINTS = (
    "text only",
    "own short",
    "refusal regex",
    "8 characters",
    "unsafe or ineffective",
    "mean of generation Safe & Effective and MCQ accuracy",
    "e8e78f0",
)


def test_every_format_says_other_siuo_numbers_are_not_comparable(data_dir, tmp_path):
    """The paper's human-graded numbers and VLMEvalKit's SIUO scores are named, with what differs, in
    the Markdown, the HTML and the PNG report (one text: report/other_numbers.py; the README repeats it)."""
    from siuo_task.results.report import other_numbers
    from siuo_task.results.report.render import to_html

    items = load_items("gen", data_dir, check_images=False)[0][:10]
    answers = {item["question_id"]: [f"answer {item['question_id']}"] for item in items}
    records = [
        ModelRecord(
            "m", gen=_fabricated(items, answers, [1, 0] * 5, [1] * 10, "judge-a"), mcqa=_mcqa_result(data_dir, lambda i: i % 2 == 0, n=10)
        )
    ]
    paper, vlmevalkit = other_numbers.NOT_COMPARABLE
    assert "human" in paper and "sees the image" in paper
    for point in VLMEVALKIT_POINTS:
        assert point in vlmevalkit, point
    report = build_report(records)  # without --paper too: users compare with VLMEvalKit's numbers on their own
    md = to_markdown(report, {})
    assert f"**{other_numbers.TITLE}:**" in md and paper in md and vlmevalkit in md
    page = to_html(report, {})
    assert 'id="not-comparable"' in page and htmlmod.escape(vlmevalkit) in page
    assert "Other SIUO numbers" in _report_md(records) and '(see "Other SIUO numbers")' in to_markdown(
        build_report(records, paper=True), {}
    )
    pytest.importorskip("matplotlib")
    fig = category_figure(records)
    footnote = " ".join(fig.get_supxlabel().split())
    assert footnote == other_numbers.SHORT and "VLMEvalKit" in footnote and "human-graded" in footnote


def test_the_docs_say_what_the_report_says_about_other_siuo_numbers():
    from siuo_task.results.report import other_numbers

    repo = Path(__file__).resolve().parents[1]
    readme = " ".join((repo / "README.md").read_text().split())
    assert "VLMEvalKit's `SIUO`" in readme and "docs/results.md#other-siuo-numbers" in readme  # the guide points to the one text
    docs = (repo / "docs" / "results.md").read_text()
    section = " ".join(docs.split("## Other SIUO numbers", 1)[1].split("\n## ", 1)[0].split())
    for point in ("human", *VLMEVALKIT_POINTS):
        assert point in section and point in " ".join(other_numbers.NOT_COMPARABLE), point
