"""`siuo compare`: paired differences, Newcombe intervals, exact McNemar p-values, and refusals.

Oracles: numbers worked out by hand (in the comments) and scipy (binomtest for the exact binomial
test, its Wilson interval for the marginal proportions); never the functions under test.
"""

import json
import math

import pytest
from scipy.stats import binomtest

from siuo_task.cli import main as siuo_main
from siuo_task.core.data import load_items
from siuo_task.core.stats import PairedTable, mcnemar_exact_p, newcombe_paired_ci
from siuo_task.results.compare import CompareRefused, compare, paired_rows

from .verify_helpers import FakeOpenAIServer, edited, gen_answers, load, score_gen_file, score_mcqa_file

Z = 1.959963984540054


# ------------------------------------------------------------------------------------------ stats


def test_mcnemar_by_hand():
    # 5 pairs A-only, 1 pair B-only: under H0 the 6 discordant pairs split Bin(6, 1/2);
    # P(X <= 1) = (C(6,0) + C(6,1)) / 2^6 = (1 + 6) / 64 = 7/64; two-sided p = 2 * 7/64 = 14/64 = 0.21875.
    assert mcnemar_exact_p(5, 1) == 0.21875
    assert mcnemar_exact_p(1, 5) == 0.21875
    # 9 vs 2: P(X <= 2) = (1 + 11 + 55) / 2^11 = 67/2048; p = 134/2048 = 0.0654296875
    assert mcnemar_exact_p(9, 2) == 0.0654296875
    # no discordant pairs, or an even split: no evidence at all
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(3, 3) == 1.0
    # 4 vs 0: 2 * (1/16) = 0.125
    assert mcnemar_exact_p(0, 4) == 0.125


@pytest.mark.parametrize("n10, n01", [(5, 1), (9, 2), (0, 7), (12, 12), (13, 12), (40, 25), (60, 2), (1, 0), (83, 84)])
def test_mcnemar_matches_scipy_binomtest(n10, n01):
    expected = binomtest(n10, n10 + n01, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact_p(n10, n01) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_newcombe_by_hand():
    # 5/5/5/5: p1 = p2 = 10/20 = 0.5, phi = (5*5 - 5*5)/... = 0, so each half-width is
    # sqrt(2) * w with w the Wilson half-width at 10/20:
    # w = z*sqrt(0.25/20 + z^2/1600) / (1 + z^2/20) = 1.95996*sqrt(0.0125 + 0.0024009)/1.192073 = 0.200702
    # sqrt(2) * 0.200702 = 0.283835  ->  [-0.283835, +0.283835]
    low, high = newcombe_paired_ci(PairedTable(5, 5, 5, 5))
    assert low == pytest.approx(-0.283835, abs=1e-6) and high == pytest.approx(0.283835, abs=1e-6)
    assert newcombe_paired_ci(PairedTable(0, 0, 0, 0)) is None


def _scipy_newcombe(n11, n10, n01, n00):
    """Newcombe (1998) method 10 from scipy's Wilson intervals and the published formula."""
    n = n11 + n10 + n01 + n00
    x1, x2 = n11 + n10, n11 + n01
    p1, p2 = x1 / n, x2 / n
    w1 = binomtest(x1, n).proportion_ci(0.95, method="wilson")
    w2 = binomtest(x2, n).proportion_ci(0.95, method="wilson")
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    phi = 0.0 if margins == 0 else (n11 * n00 - n10 * n01) / math.sqrt(margins)
    d1, e1 = p1 - w1.low, w1.high - p1
    d2, e2 = p2 - w2.low, w2.high - p2
    return (p1 - p2 - math.sqrt(d1 * d1 - 2 * phi * d1 * e2 + e2 * e2), p1 - p2 + math.sqrt(e1 * e1 - 2 * phi * e1 * d2 + d2 * d2))


@pytest.mark.parametrize("table", [(5, 5, 1, 156), (1, 1, 7, 12), (14, 5, 0, 22), (40, 30, 10, 87), (0, 3, 0, 0), (20, 0, 0, 0)])
def test_newcombe_matches_scipy_wilson_oracle(table):
    low, high = newcombe_paired_ci(PairedTable(*table))
    exp_low, exp_high = _scipy_newcombe(*table)
    assert low == pytest.approx(max(-1.0, exp_low), abs=1e-9) and high == pytest.approx(min(1.0, exp_high), abs=1e-9)
    diff = (table[1] - table[2]) / sum(table)
    assert low <= diff <= high and -1.0 <= low and high <= 1.0


# ---------------------------------------------------------------------------- results to compare


@pytest.fixture(scope="module")
def mcqa_pair(data_dir, tmp_path_factory):
    """A correct on the first 10 items, B on the first 5 and the 11th (all self-harm, ids 1001-1019):
    both 1: 5, A only: 5 (1006-1010), B only: 1 (1011), neither: 156."""
    folder = tmp_path_factory.mktemp("compare")
    items = load_items("mcqa", data_dir, check_images=False)[0]

    def responses(correct_at):
        return {
            it["question_id"]: f"({it['correct_option']})"
            if i in correct_at
            else f"({next(c for c in 'ABCD' if c != it['correct_option'])})"
            for i, it in enumerate(items)
        }

    a = responses(set(range(10)))
    b = responses(set(range(5)) | {10})
    return {
        "a": score_mcqa_file(data_dir, folder, a, "a.json"),
        "b": score_mcqa_file(data_dir, folder, b, "b.json"),
        "b_strict": score_mcqa_file(data_dir, folder, b, "b_strict.json", policy="strict"),
        "b_fewer": score_mcqa_file(data_dir, folder, {q: r for q, r in b.items() if q != 9021}, "b_fewer.json"),
        "folder": folder,
        "data_dir": data_dir,
    }


def run_compare(capsys, *args):
    capsys.readouterr()  # drop what earlier steps printed
    code = siuo_main(["compare", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compare_mcqa_hand_case(mcqa_pair, capsys):
    code, out, err = run_compare(capsys, mcqa_pair["a"], mcqa_pair["b"], "--json")
    assert code == 0, err
    [report] = json.loads(out)
    overall = {r["metric"]: r for r in report["rows"] if r["scope"] == "overall"}
    acc = overall["accuracy"]
    # A 10/167 = 5.99%, B 6/167 = 3.59%, A - B = 4/167 = 2.40 points; p = 14/64 (see test_mcnemar_by_hand)
    assert (acc["n"], acc["both"], acc["a_only"], acc["b_only"], acc["neither"]) == (167, 5, 5, 1, 156)
    assert (acc["a"], acc["b"], acc["diff"]) == (5.99, 3.59, 2.4)
    assert acc["p_value"] == 0.21875
    low, high = _scipy_newcombe(5, 5, 1, 156)
    assert acc["ci95"] == [round(100 * low, 2), round(100 * high, 2)]
    assert acc["exploratory"] is False
    assert overall["unparsed"]["diff"] == 0.0 and overall["unparsed"]["p_value"] == 1.0
    self_harm = next(r for r in report["rows"] if r["metric"] == "accuracy" and r["scope"] == "self-harm")
    assert (self_harm["n"], self_harm["a_only"], self_harm["b_only"], self_harm["p_value"], self_harm["exploratory"]) == (
        19,
        5,
        1,
        0.21875,
        True,
    )
    assert [(d["question_id"], d["a"], d["b"]) for d in report["differing_items"] if d["metric"] == "accuracy"] == [
        (1006, 1, 0),
        (1007, 1, 0),
        (1008, 1, 0),
        (1009, 1, 0),
        (1010, 1, 0),
        (1011, 0, 1),
    ]
    # the text form says which methods, marks the categories exploratory and lists the items
    code, out, _ = run_compare(capsys, mcqa_pair["a"], mcqa_pair["b"])
    assert "Newcombe" in out and "exact McNemar" in out and "exploratory" in out
    assert "6 item verdict(s) differ" in out and "1011  self-harm  accuracy: 0 vs 1" in out


def test_compare_gen_matches_counts_and_scipy(mcqa_pair, tmp_path, capsys):
    data_dir = mcqa_pair["data_dir"]
    items = load_items("gen", data_dir, check_images=False)[0][:80]  # a --limit run of both models: the same 80 items
    other = {
        it["question_id"]: ["SAFE answer", "UNSAFE answer", "SAFE PARTIAL"] if it["question_id"] % 4 else ["UNSAFE", "UNSAFE", None]
        for it in items
    }
    with FakeOpenAIServer() as server:  # one judge endpoint for both models
        path_a = score_gen_file(data_dir, tmp_path, gen_answers(items), "gen_a.json", server=server)
        path_b = score_gen_file(data_dir, tmp_path, other, "gen_b.json", server=server)
    code, out, err = run_compare(capsys, path_a, path_b, "--json")
    assert code == 0, err
    [report] = json.loads(out)
    a_items = {r["question_id"]: r for r in load(path_a)["items"]}
    b_items = {r["question_id"]: r for r in load(path_b)["items"]}
    for name in ("safe", "effective", "safe_effective"):
        pairs = [(a_items[q][name], b_items[q][name]) for q in a_items if a_items[q][name] is not None and b_items[q][name] is not None]
        n10 = sum(1 for x, y in pairs if (x, y) == (1, 0))
        n01 = sum(1 for x, y in pairs if (x, y) == (0, 1))
        row = next(r for r in report["rows"] if r["metric"] == name and r["scope"] == "overall")
        assert (row["n"], row["a_only"], row["b_only"]) == (len(pairs), n10, n01)
        assert row["diff"] == round(100 * (n10 - n01) / len(pairs), 2)
        assert row["p_value"] == pytest.approx(binomtest(n10, n10 + n01).pvalue if n10 + n01 else 1.0, rel=1e-12)
        assert len(report["without_verdict"][name]) == len(a_items) - len(pairs)


# ------------------------------------------------------------------------------------------ refusals


def test_refuses_different_items_unless_told(mcqa_pair, capsys):
    data = ("--data-dir", str(mcqa_pair["data_dir"]))  # an incomplete MCQA result's key is checked against the data only
    code, _, err = run_compare(capsys, mcqa_pair["a"], mcqa_pair["b_fewer"])
    assert code == 2 and "give --data-dir" in err  # without the data its answer key can't be checked: refused
    code, _, err = run_compare(capsys, mcqa_pair["a"], mcqa_pair["b_fewer"], *data)
    assert code == 2 and "cover different items" in err and "only in" in err and "9021" in err and "--allow-different-items" in err
    code, out, err = run_compare(capsys, mcqa_pair["a"], mcqa_pair["b_fewer"], *data, "--allow-different-items", "--json")
    assert code == 0, err
    [report] = json.loads(out)
    assert report["n_items"] == 166 and report["item_differences"]["only_a"] == [9021]


def test_refuses_different_judges_unless_told(mcqa_pair, tmp_path, capsys):
    data_dir = mcqa_pair["data_dir"]
    items = load_items("gen", data_dir, check_images=False)[0]
    gen = load(score_gen_file(data_dir, tmp_path, gen_answers(items), "gen.json"))
    cases = {
        "judge model": lambda r: r["provenance"]["judge"].__setitem__("model", "gpt-4o-2024-08-06"),
        "judge endpoint_host": lambda r: r["provenance"]["judge"].__setitem__("endpoint_host", "api.openai.com"),
        "judge decoding": lambda r: r["provenance"]["judge"]["decoding"].__setitem__("temperature", 0.7),
        "safety_judge prompt hash": lambda r: r["provenance"]["prompt_hashes"].__setitem__("safety_judge", "0" * 16),
    }
    (tmp_path / "a.json").write_text(json.dumps(gen))
    for words, edit in cases.items():
        (tmp_path / "b.json").write_text(json.dumps(edited(gen, edit)))
        code, _, err = run_compare(capsys, tmp_path / "a.json", tmp_path / "b.json")
        assert code == 2 and words in err and "--allow-different-judges" in err, (words, err)
        code, out, err = run_compare(capsys, tmp_path / "a.json", tmp_path / "b.json", "--allow-different-judges")
        assert code == 0 and f"WARNING (allowed): {words}" in out, (words, out, err)
    # MCQA: a different parsing policy is a different scoring setup
    code, _, err = run_compare(capsys, mcqa_pair["a"], mcqa_pair["b_strict"])
    assert code == 2 and "MCQA policy" in err
    # gen against MCQA: nothing to pair
    code, _, err = run_compare(capsys, tmp_path / "a.json", mcqa_pair["a"])
    assert code == 2 and "nothing to pair" in err and "siuo_gen" in err and "siuo_mcqa" in err


def test_refuses_results_whose_records_do_not_recompute_or_are_invalid(mcqa_pair):
    a, b = load(mcqa_pair["a"]), load(mcqa_pair["b"])
    tampered = edited(b, lambda r: r["items"][20].__setitem__("correct", 1))
    with pytest.raises(
        CompareRefused, match=r"B: does not verify \(NOT VERIFIED: 1 number differs \(items\[question_id=2002\].correct\)\)"
    ):
        compare(a, tampered)
    invalid = edited(b, lambda r: r.update(valid=False, invalid_reasons=["too many failed requests"]))
    with pytest.raises(CompareRefused, match="too many failed requests"):
        compare(a, invalid)


def test_paired_rows_for_the_report(mcqa_pair):
    a, b = load(mcqa_pair["a"]), load(mcqa_pair["b"])
    rows = paired_rows(a, b)
    assert [r["metric"] for r in rows] == ["accuracy", "unparsed"]
    low, high = _scipy_newcombe(5, 5, 1, 156)
    assert rows[0]["cell"] == f"+2.40 pp [{100 * low:+.2f}, {100 * high:+.2f}], McNemar p=0.2188 (n=167)"
    assert rows[0]["row"]["p_value"] == 0.21875
    refused = paired_rows(a, load(mcqa_pair["b_strict"]))
    assert [r["metric"] for r in refused] == ["accuracy", "unparsed"]
    assert all(r["row"] is None and r["cell"].startswith("not paired: ") and "MCQA policy" in r["cell"] for r in refused)
    allowed = paired_rows(a, load(mcqa_pair["b_strict"]), allow_different_judges=True)
    assert allowed[0]["row"]["a_only"] == 5


def test_paired_cells_pair_each_setting(mcqa_pair, tmp_path):
    from siuo_task.results.compare import paired_cells

    data_dir = mcqa_pair["data_dir"]
    items = load_items("gen", data_dir, check_images=False)[0]
    gen = load(score_gen_file(data_dir, tmp_path, gen_answers(items), "gen.json"))
    a, b = load(mcqa_pair["a"]), load(mcqa_pair["b"])
    cells = paired_cells([gen, a], [gen, b])
    assert set(cells) == {"safe", "effective", "safe_effective", "accuracy", "unparsed"}
    # the same generation result on both sides: no discordant pair, difference 0, p = 1
    assert cells["safe"].startswith("+0.00 pp [") and "McNemar p=1.0000" in cells["safe"]
    assert cells["accuracy"].startswith("+2.40 pp [")
    assert set(paired_cells([a], [gen, b])) == {"accuracy", "unparsed"}


def test_paired_table_counts_and_rejects_non_binary_outcomes():
    table = PairedTable.from_pairs([(1, 1), (1, 0), (1, 0), (0, 1), (0, 0), (0, 0), (0, 0)])
    assert (table.n11, table.n10, table.n01, table.n00, table.n) == (1, 2, 1, 3, 7)
    for bad in ([(1, None)], [(2, 0)], [(True, 0)]):
        with pytest.raises(ValueError):
            PairedTable.from_pairs(bad)
