"""Expected values on distributions worked out by hand."""

from __future__ import annotations

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.judges import default_judge
from icrm_sgl.judging.expectation import (
    expectations,
    expected_margin,
    expected_score,
    prob_a_better,
    prob_first_scores_higher,
)
from tests.conftest import FAST


def test_expected_score_by_hand():
    assert expected_score({"3": 0.5, "7": 0.5}) == pytest.approx(5.0)
    assert expected_score({"1": 0.2, "10": 0.8}) == pytest.approx(8.2)
    assert expectations(default_judge("individual"), {"4": 1.0}) == {"expected_score": 4.0}


def test_expected_margin_and_prob_a_better_by_hand():
    dist = {"A++": 0.5, "B+": 0.25, "A=B": 0.25}
    pairwise = default_judge("pairwise")
    assert expected_margin(dist, pairwise) == pytest.approx(2 * 0.5 - 1 * 0.25)  # 0.75
    assert prob_a_better(dist, pairwise) == pytest.approx(0.5 + 0.25 / 2)  # a tie counts half
    assert expectations(pairwise, dist) == {"expected_margin": 0.75}


def test_prob_first_scores_higher_by_hand():
    # 8 vs (5 or 8, evenly): wins half the time, ties the other half -> 0.5 + 0.25
    assert prob_first_scores_higher({"8": 1.0}, {"5": 0.5, "8": 0.5}) == pytest.approx(0.75)
    assert prob_first_scores_higher({"2": 1.0}, {"9": 1.0}) == 0.0


@pytest.mark.parametrize(
    "bad",
    [{}, {"11": 1.0}, {"3": -0.1, "4": 1.1}, {"3": 0.2}, {"3": "half", "4": 0.5}],
)
def test_bad_distributions_are_refused(bad):
    with pytest.raises(InputError):
        expected_score(bad)


def test_verdict_meta_carries_the_expected_score(individual_model, individual_example):
    meta = individual_model.judge(individual_example, **FAST).meta
    by_hand = sum(int(s) * p for s, p in meta["probabilities"].items())
    assert meta["expected_score"] == pytest.approx(by_hand, abs=1e-4)
    assert 1 <= meta["expected_score"] <= 10


def test_verdict_meta_carries_the_expected_margin(pairwise_model, pairwise_example):
    meta = pairwise_model.judge(pairwise_example, **FAST).meta
    margins = {"A++": 2, "A+": 1, "A=B": 0, "B+": -1, "B++": -2}
    by_hand = sum(margins[c] * p for c, p in meta["probabilities"].items())
    assert meta["expected_margin"] == pytest.approx(by_hand, abs=1e-4)
