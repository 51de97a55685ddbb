"""No `siuo` command prints a traceback on any input: malformed input gets exit 2 and a message
naming the file (and, for a SIUO file of the wrong shape, the field).

Seeded fuzzing: random type swaps, deletions and duplications over real files (a generation and an
MCQA result as the scorer writes them, a harness results file, official submissions), fed to
`siuo verify`, `report`, `compare`, `export`, `score` and `agree`; plus 100,000 nested brackets and
loops of symbolic links. The fast tier runs a few cases per file; the e2e tier many more.
"""

import copy
import json
import math
import random
from pathlib import Path

import pytest

from siuo_dev.testing import score_gen_args
from siuo_task.cli import main as siuo_main
from siuo_task.core import scoring
from siuo_task.core.data import load_items
from siuo_task.core.layouts import LMMS_EVAL

from .verify_helpers import gen_answers, mcqa_response

SEED = 20261204
STAMP = "20261201_000000"
# What a field may be swapped for: every JSON type, odd numbers, deep and large values.
VALUES = [
    None,
    True,
    False,
    0,
    -7,
    3.5,
    10**30,
    float("nan"),
    float("inf"),
    "",
    "x",
    "A" * 5000,
    [],
    [None],
    [[1, 2]],
    {},
    {"a": 1},
    {"question_id": [1]},
    [[[[[[[[[[0]]]]]]]]]],
]
ALLOWED_EXITS = {0, 1, 2, 3, 4}  # never 70 (a bug) and never a traceback


class SafeReply:
    def __init__(self, text):
        self.text, self.error = text, None


@pytest.fixture(scope="module")
def bases(data_dir):
    """Real files: results as the scorer writes them (the fake judge's reply texts), a harness
    results file, official submissions."""
    from siuo_dev.fake_judge_server import default_responder

    gen_items, source = load_items("gen", data_dir, check_images=False)
    mcqa_items, _ = load_items("mcqa", data_dir, check_images=False)
    answers = gen_answers(gen_items)
    by_id = {item["question_id"]: item for item in gen_items}
    replies = {}
    for request in scoring.plan_judge_requests(answers, by_id):
        body = {"messages": [{"role": "user", "content": [{"type": "text", "text": request.prompt}]}]}
        replies[request.key] = SafeReply(default_responder(body))
    judge = {"model": "fake-judge", "endpoint_host": "127.0.0.1:9", "decoding": {"temperature": 0.0}, "dry_run": False}
    gen = scoring.assemble_gen(
        answers,
        gen_items,
        replies,
        source=source,
        judge=judge,
        max_error_rate=0.5,
        harness={"name": "siuo score", "input": "x.json"},
        task="siuo_gen_vote3",
    )
    mcqa = scoring.score_mcqa({it["question_id"]: mcqa_response(i, it) for i, it in enumerate(mcqa_items)}, mcqa_items, source=source)
    harness = {
        "results": {"siuo_mcqa": {"alias": "siuo_mcqa", "accuracy,none": mcqa["metrics"]["accuracy"]}, "mmmu": {"acc,none": 0.3}},
        "config": {"model": "hf", "model_args": "pretrained=org/m"},
        "n-samples": {"siuo_mcqa": {"effective": 167}},
    }
    release = {it["question_id"]: {k: v for k, v in it.items() if k != "image_path"} for it in mcqa_items}
    submission = [dict(release[qid], response_mcqa=r["response"]) for qid, r in ((r["question_id"], r) for r in mcqa["items"])]
    return {"gen": gen, "mcqa": mcqa, "harness": harness, "submission": submission, "data_dir": data_dir}


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index in sorted({0, len(node) - 1, len(node) // 2} & set(range(len(node)))):
            yield from _paths(node[index], prefix + (index,))


def mutate(doc, rng: random.Random):
    """1-3 random changes: a field deleted, swapped for another type's value, or a list entry doubled."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(doc))
        path = rng.choice(paths)
        value = copy.deepcopy(rng.choice(VALUES))
        if not path:
            return value
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        op = rng.random()
        if op < 0.3:
            del parent[key]
        elif op < 0.4 and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[key] = value
        if not isinstance(doc, (dict, list)):
            return doc
    return doc


def write(path: Path, payload) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, allow_nan=True), encoding="utf-8")
    return path


def check(capsys, args, names):
    """Run `siuo ARGS`: an allowed exit, no traceback, and on exit 2 a message naming one of ``names``."""
    capsys.readouterr()
    try:
        code = siuo_main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code in ALLOWED_EXITS and "Traceback" not in text, (args, code, text[-2000:])
    if code == 2:
        assert any(str(name) in text for name in names), (args, text[-2000:])
    return code, text


def _harness_folder(root: Path, harness: dict, linked=None, task="siuo_mcqa") -> Path:
    model = root / "m"
    write(model / f"{STAMP}_results.json", harness)
    if linked is not None:
        write(model / LMMS_EVAL.siuo_name(STAMP, task), linked)
    return root


def fuzz(bases, tmp_path, capsys, n: int):
    rng = random.Random(SEED)
    data_dir = bases["data_dir"]
    codes = {}
    for kind in ("gen", "mcqa"):
        base = write(tmp_path / f"base-{kind}.json", bases[kind])
        for i in range(n):
            path = write(tmp_path / f"{kind}-{i}.json", mutate(bases[kind], rng))
            names = (path, path.name)
            code, text = check(capsys, ["verify", path], names)
            codes.setdefault(("verify", code), 0)
            codes[("verify", code)] += 1
            if code == 2 and "MALFORMED" in text:
                assert "expected" in text  # the field and what it should be
            check(capsys, ["report", path], names)
            check(capsys, ["compare", base, path], names)
            if kind == "gen":
                check(capsys, ["agree", base, path], names)
            run_dir = _harness_folder(
                tmp_path / f"run-{kind}-{i}",
                {**bases["harness"], "results": {f"siuo_{'gen_vote3' if kind == 'gen' else 'mcqa'}": {"alias": "x", "safe,none": 1.0}}},
                linked=json.loads(path.read_text()),
                task="siuo_gen_vote3" if kind == "gen" else "siuo_mcqa",
            )
            linked = run_dir / "m" / LMMS_EVAL.siuo_name(STAMP, "siuo_gen_vote3" if kind == "gen" else "siuo_mcqa")
            check(capsys, ["export", run_dir, "--to", "official", "--data-dir", data_dir], (linked, linked.name, run_dir))
            check(capsys, ["verify", run_dir], (linked, linked.name, run_dir))
    for i in range(n):
        payload = mutate(bases["harness"], rng)
        run_dir = _harness_folder(tmp_path / f"harness-{i}", payload, linked=bases["mcqa"])
        results = run_dir / "m" / f"{STAMP}_results.json"
        names = (results, results.name, run_dir)
        for args in (
            ["verify", run_dir],
            ["report", run_dir],
            ["export", run_dir, "--to", "official", "--data-dir", data_dir],
            ["compare", run_dir, run_dir],
        ):
            check(capsys, args, names)
    for i in range(n):
        path = write(tmp_path / f"siuo_mcqa-sub{i}.json", mutate(bases["submission"], rng))
        names = (path, path.name)
        check(capsys, ["score", "mcqa", path, "--out", tmp_path / f"scored-{i}.json", "--data-dir", data_dir], names)
        check(capsys, ["verify", path], names)
        gen_rows = [{"question_id": r["question_id"], "responses": [r["response_mcqa"]]} for r in bases["submission"]]
        gen_path = write(tmp_path / f"siuo_gen-sub{i}.json", mutate(gen_rows, rng))
        check(
            capsys,
            score_gen_args(gen_path, tmp_path / f"gen-scored-{i}.json", data_dir, "http://127.0.0.1:9/v1", cache="off"),
            (gen_path, gen_path.name),
        )
    return codes


def test_fuzzed_files_never_crash_a_command(bases, tmp_path, capsys, clean_env):
    codes = fuzz(bases, tmp_path, capsys, n=6)
    assert codes.get(("verify", 2)), codes  # the cases do reach the malformed path ...
    assert codes.get(("verify", 1)), codes  # ... and the mismatch path


@pytest.mark.e2e  # several hundred cases
def test_many_fuzzed_files_never_crash_a_command(bases, tmp_path, capsys, clean_env):
    fuzz(bases, tmp_path, capsys, n=120)


# The malformed files the issue found, each named by its field.
NAMED_CASES = {
    "items[0].question_id": lambda r: r["items"][0].__setitem__("question_id", [1001]),
    "items[1].question_id": lambda r: r["items"][1].__setitem__("question_id", {"id": 1002}),
    "items[question_id=1001].answers": lambda r: r["items"][0].__setitem__("answers", [1, 2, 3]),
    "provenance.judge": lambda r: r["provenance"].__setitem__("judge", "gpt-4o-mini"),
    "ci95.safe": lambda r: r["ci95"].__setitem__("safe", "wide"),
    "metrics": lambda r: r.__setitem__("metrics", [1, 2]),
    "by_category.morality": lambda r: r["by_category"].__setitem__("morality", 5),
    "counts.n": lambda r: r["counts"].__setitem__("n", "167"),
    "metrics.safe": lambda r: r["metrics"].__setitem__("safe", float("nan")),
}


@pytest.mark.parametrize("field", list(NAMED_CASES))
def test_malformed_results_are_named(field, bases, tmp_path, capsys, clean_env):
    doc = copy.deepcopy(bases["gen"])
    NAMED_CASES[field](doc)
    path = write(tmp_path / "bad.json", doc)
    base = write(tmp_path / "base.json", bases["gen"])
    for args in (["verify", path], ["report", path], ["compare", base, path], ["agree", path, base]):
        code, text = check(capsys, args, (path,))
        assert code == 2 and field in text, (args, text)
    submission = write(tmp_path / "siuo_mcqa-bad.json", [{"question_id": [1001], "response_mcqa": "A"}])
    code, text = check(capsys, ["score", "mcqa", submission, "--out", tmp_path / "o.json", "--data-dir", bases["data_dir"]], (submission,))
    assert code == 2 and "question_id" in text


def test_deep_nesting_and_link_loops(bases, tmp_path, capsys, clean_env):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    deep_obj = tmp_path / "deep-obj.json"
    deep_obj.write_text('{"task": "siuo_gen", "metrics": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}")
    loops = tmp_path / "loops"
    loops.mkdir()
    (loops / "a.json").symlink_to(loops / "b.json")
    (loops / "b.json").symlink_to(loops / "a.json")
    (loops / "self").symlink_to(loops, target_is_directory=True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "siuo_gen.json").write_text("[" * 100_000)
    (data / "siuo_mcqa.json").symlink_to(data / "siuo_mcqa.json")
    base = write(tmp_path / "base.json", bases["mcqa"])
    out = tmp_path / "o.json"
    for bad in (deep, deep_obj, loops, loops / "a.json", loops / "self"):
        names = (bad, bad.name)
        for args in (
            ["verify", bad],
            ["report", bad],
            ["compare", base, bad],
            ["compare", bad, base],
            ["agree", bad, base],
            ["export", bad, "--to", "official", "--data-dir", bases["data_dir"]],
            ["score", "mcqa", bad, "--out", out, "--data-dir", bases["data_dir"]],
            ["score", "gen", bad, "--out", out, "--data-dir", bases["data_dir"], "--cache-dir", "off"],
        ):
            code, _ = check(capsys, args, names)
            assert code in (1, 2), args
    code, text = check(capsys, ["data", "check", data], (data / "siuo_gen.json",))
    assert code == 2 and "nested too deeply" in text
    code, _ = check(capsys, ["verify", base, "--data-dir", data], (data / "siuo_gen.json", data / "siuo_mcqa.json"))
    assert code == 2
    assert math.isfinite(len(VALUES))
