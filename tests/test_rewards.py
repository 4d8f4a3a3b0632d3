"""One number per verdict: the score or margin, or its expected value."""

import pytest

from icrm_sgl.judges import default_judge

INDIVIDUAL = {"score": 7}
PAIRWISE = {"choice": "B+"}


def test_without_probabilities_the_label_itself_counts():
    assert default_judge("individual").reward_value(INDIVIDUAL, {}) == 7.0
    assert default_judge("pairwise").reward_value(PAIRWISE, {}) == -1.0


def test_probabilities_give_the_expected_value():
    meta = {"probabilities": {"6": 0.25, "7": 0.5, "8": 0.25}}
    assert default_judge("individual").reward_value(INDIVIDUAL, meta) == pytest.approx(7.0)
    meta = {"probabilities": {"A++": 0.5, "B++": 0.25, "A=B": 0.25}}
    assert default_judge("pairwise").reward_value(PAIRWISE, meta) == pytest.approx(0.5)


def test_probabilities_rounded_off_their_sum_are_renormalised():
    meta = {"probabilities": {"2": 0.4999, "4": 0.4999}}
    assert default_judge("individual").reward_value(INDIVIDUAL, meta) == pytest.approx(3.0)


def test_a_precomputed_expectation_in_meta_wins():
    meta = {"expected_score": 6.5, "probabilities": {"9": 1.0}}
    assert default_judge("individual").reward_value(INDIVIDUAL, meta) == 6.5
    meta = {"expected_margin": -0.25, "probabilities": {"A++": 1.0}}
    assert default_judge("pairwise").reward_value(PAIRWISE, meta) == -0.25
