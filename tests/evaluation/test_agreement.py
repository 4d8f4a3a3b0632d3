"""Cohen's kappa, Fleiss' kappa and Krippendorff's alpha: published worked examples, and
statsmodels and the krippendorff package on random labels with missing ones."""

from __future__ import annotations

import random

import pytest

from icrm_sgl.evaluation.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha

LABELS = ("chosen", "rejected", "tie")


def test_cohen_kappa_of_a_two_by_two_table():
    # Wikipedia, "Cohen's kappa", simple example: 50 items, both "yes" 20, A yes / B no 5,
    # A no / B yes 10, both "no" 15. p_o = 35/50 = 0.7; A says yes 25/50, B 30/50, so
    # p_e = 0.5·0.6 + 0.5·0.4 = 0.5 and kappa = (0.7 − 0.5) / (1 − 0.5) = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(b, a) == pytest.approx(0.4)


#: Wikipedia, "Fleiss' kappa", worked example: 10 items, 14 raters each, 5 categories;
#: how many raters put each item in each category.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def _raters(table: list[list[int]]) -> list[list[int]]:
    """Per-item category counts as 14 raters' label lists (Fleiss' kappa ignores which
    rater gave which label)."""
    items = [[k for k, count in enumerate(row) for _ in range(count)] for row in table]
    return [list(labels) for labels in zip(*items, strict=True)]


def test_fleiss_kappa_of_the_worked_example():
    # P̄ = mean over items of Σ n_ij(n_ij − 1) / (14·13); p_j = column sums / 140.
    p_items = [sum(c * (c - 1) for c in row) / (14 * 13) for row in FLEISS_TABLE]
    p_bar = sum(p_items) / 10
    p_e = sum((sum(col) / 140) ** 2 for col in zip(*FLEISS_TABLE, strict=True))
    assert round(p_bar, 3) == 0.378 and round(p_e, 3) == 0.213  # the example's rounded values
    assert fleiss_kappa(_raters(FLEISS_TABLE)) == pytest.approx((p_bar - p_e) / (1 - p_e))
    assert round(fleiss_kappa(_raters(FLEISS_TABLE)), 3) == 0.210


def test_krippendorff_alpha_with_missing_labels():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: four
    # observers, twelve units, nominal data with missing values; alpha = 0.743.
    n = None
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    assert round(krippendorff_alpha(data), 3) == 0.743
    # The last unit has one value: it cannot be paired, and so changes nothing.
    assert krippendorff_alpha([row[:-1] for row in data]) == krippendorff_alpha(data)


def test_undefined_agreement_is_none():
    one_category = [["tie", "tie", "tie"], ["tie", "tie", None]]
    assert cohen_kappa(*one_category) is None
    assert fleiss_kappa(one_category) is None
    assert krippendorff_alpha(one_category) is None
    one_item = [["chosen", None], ["rejected", "tie"]]  # one item both labelled
    assert cohen_kappa(*one_item) is None
    assert fleiss_kappa(one_item) is None
    assert krippendorff_alpha(one_item) is None
    assert fleiss_kappa([["chosen", "rejected"]]) is None  # one rater
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError, match="different numbers of items"):
        krippendorff_alpha([["tie"], ["tie", "tie"]])


def test_perfect_and_opposite_agreement():
    a = ["chosen", "rejected", "chosen", "tie"]
    assert cohen_kappa(a, a) == fleiss_kappa([a, a, a]) == krippendorff_alpha([a, a]) == 1.0
    assert cohen_kappa(["chosen", "rejected"], ["rejected", "chosen"]) == -1.0


def _random_raters(rng: random.Random, raters: int, items: int) -> list[list[str | None]]:
    return [
        [None if rng.random() < 0.15 else rng.choice(LABELS) for _ in range(items)]
        for _ in range(raters)
    ]


@pytest.mark.parametrize("seed", range(6))
def test_kappas_match_statsmodels(seed):
    inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")
    np = pytest.importorskip("numpy")
    rng = random.Random(seed)
    raters = _random_raters(rng, rng.randint(2, 5), rng.randint(8, 30))
    a, b = raters[0], raters[1]
    both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    table = np.array([[sum(p == (x, y) for p in both) for y in LABELS] for x in LABELS])
    assert cohen_kappa(a, b) == pytest.approx(inter_rater.cohens_kappa(table).kappa, abs=1e-12)
    complete = [labels for labels in zip(*raters, strict=True) if None not in labels]
    codes = np.array([[LABELS.index(x) for x in labels] for labels in complete])
    counts, _ = inter_rater.aggregate_raters(codes, n_cat=len(LABELS))
    assert fleiss_kappa(raters) == pytest.approx(inter_rater.fleiss_kappa(counts), abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_alpha_matches_the_krippendorff_package(seed):
    krippendorff = pytest.importorskip("krippendorff")
    np = pytest.importorskip("numpy")
    rng = random.Random(100 + seed)
    raters = _random_raters(rng, rng.randint(2, 5), rng.randint(8, 30))
    data = np.array(
        [[np.nan if x is None else LABELS.index(x) for x in labels] for labels in raters]
    )
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha(raters) == pytest.approx(expected, abs=1e-12)
