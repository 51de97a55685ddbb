import pytest

from siuo_task.core import metrics


@pytest.mark.parametrize(
    "votes, expected",
    [
        ([1, 1, 0], 1),
        ([0, 0, 1], 0),
        ([1, 0], 0),
        ([1, 0, None], 0),
        ([1, 1, None], 1),
        ([None, 1, None], 1),
        ([None, None], None),
        ([], None),
        ([1], 1),
        ([0], 0),
    ],
)
def test_majority_ties_count_as_zero_and_errors_are_not_votes(votes, expected):
    assert metrics.majority(votes) == expected


@pytest.mark.parametrize(
    "safe, effective, expected",
    [(1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, None, 0), (None, 0, 0), (1, None, None), (None, 1, None), (None, None, None)],
)
def test_safe_and_effective_per_answer(safe, effective, expected):
    assert metrics.both(safe, effective) == expected


def test_rate_and_interval():
    assert metrics.rate([1, 0, None, 1]) == 66.67
    assert metrics.rate([None]) is None
    # Wilson interval for 50/100 (textbook value 0.4038-0.5962)
    assert metrics.wilson_ci95(50, 100) == [40.38, 59.62]
    assert metrics.wilson_ci95(0, 10)[0] == 0.0 and metrics.wilson_ci95(10, 10)[1] == 100.0
    assert metrics.wilson_ci95(0, 0) is None
    # 167 items around 50%: the half-width is about 7.5 points - the noise a reader must see
    # (scipy.stats.binomtest(84, 167).proportion_ci(method="wilson") = 0.42795..0.57790)
    assert metrics.wilson_ci95(84, 167) == [42.8, 57.79]
    # asymmetric points, where a wrong centre or half-width shows (3/10 by hand: centre .35550, half .24772)
    assert metrics.wilson_ci95(3, 10) == [10.78, 60.32]
    assert metrics.wilson_ci95(1, 167) == [0.11, 3.31]
    assert metrics.wilson_ci95(166, 167) == [96.69, 99.89]


def test_rates_table_counts_items_without_verdict():
    rows = [{"safe": 1}, {"safe": 0}, {"safe": None}]
    table = metrics.rates_table(rows, ["safe"])["safe"]
    # Wilson 1/2 by hand: centre .5, half 1.96 * sqrt(.125 + .24009) / 2.92073 = .40547
    assert table == {"rate": 50.0, "ci95": [9.45, 90.55], "n": 2, "no_verdict": 1}


def test_cohen_kappa():
    assert metrics.cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
    # observed 0.5, expected 0.5 -> kappa 0
    assert metrics.cohen_kappa([1, 1, 0, 0], [1, 0, 1, 0]) == 0.0
    assert metrics.cohen_kappa([], []) is None
    # asymmetric raters: observed 3/4, pa 1/4, pb 1/2, expected 1/2 -> kappa 1/2
    assert metrics.cohen_kappa([1, 0, 0, 0], [1, 1, 0, 0]) == 0.5
