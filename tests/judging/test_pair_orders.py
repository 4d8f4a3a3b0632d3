"""The one reconciler of a pair's two orders, by hand; ``score --both-orders`` and
``eval`` both read their numbers from it."""

from __future__ import annotations

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.metrics import compute_metrics
from icrm_sgl.judges import default_judge
from icrm_sgl.judging.pair_orders import choice_view, reconcile

PAIRWISE = default_judge("pairwise")


def test_a_swapped_verdict_is_read_from_the_reference_reply():
    view = choice_view("A++", {"A++": 0.7, "A=B": 0.1, "B+": 0.2}, True, PAIRWISE)
    assert view.greedy == -2.0
    assert view.expected == pytest.approx(-(1.4 - 0.2))
    assert view.p_better == pytest.approx(1 - (0.7 + 0.05))


def test_reconcile_cancels_a_position_preference():
    # A/B: mostly A++ (margin 1.2). B/A: the judge again says A++, i.e. it prefers
    # whichever reply comes first; read from A's side that is B++ 0.7, A++ 0.3.
    result = reconcile(
        [
            choice_view("A++", {"A++": 0.6, "A+": 0.2, "B+": 0.2}, False, PAIRWISE),
            choice_view("A++", {"A++": 0.7, "B++": 0.3}, True, PAIRWISE),
        ]
    )
    # mean: A++ (0.6+0.3)/2=0.45, A+ 0.1, B+ 0.1, B++ 0.35
    assert result.expected_margin == pytest.approx(0.9 + 0.1 - 0.1 - 0.7)  # 0.2
    assert result.p_a_better == pytest.approx(0.45 + 0.1)
    assert result.greedy_margin == 0.0  # +2 then -2
    assert result.flipped is True


def test_reconcile_without_probabilities_uses_the_greedy_labels():
    result = reconcile(
        [choice_view("A+", None, False, PAIRWISE), choice_view("B++", None, True, PAIRWISE)]
    )
    assert result.expected_margin == pytest.approx(1.5)
    assert result.p_a_better == pytest.approx(1.0)
    assert result.flipped is False


def test_one_order_has_no_flip_and_none_has_no_result():
    assert reconcile([choice_view("B+", None, False, PAIRWISE)]).flipped is None
    assert reconcile([]) is None


def test_bad_probabilities_are_refused():
    with pytest.raises(InputError):
        choice_view("A+", {"A+": 2.0}, False, PAIRWISE)


def test_eval_metrics_agree_with_the_reconciler():
    """The same two verdicts give the same debiased numbers in an eval report."""
    ab = {"A++": 0.6, "A+": 0.2, "B+": 0.2}
    ba = {"A++": 0.7, "B++": 0.3}
    record = {
        "id": "p",
        "subset": "s",
        "mode": "pairwise",
        "judgements": [
            {"order": "chosen_first", "choice": "A++", "error": None, "probabilities": ab},
            {"order": "rejected_first", "choice": "A++", "error": None, "probabilities": ba},
        ],
    }
    expected = reconcile(
        [choice_view("A++", ab, False, PAIRWISE), choice_view("A++", ba, True, PAIRWISE)]
    )
    by_label = compute_metrics([record], reconcile="choice")["overall"]
    by_probability = compute_metrics([record], reconcile="probability")["overall"]
    assert by_label["flips"] == 1 and expected.flipped
    assert by_label["ties"] == 1 and expected.greedy_margin == 0.0
    assert by_probability["correct"] == 1 and expected.expected_margin > 0
