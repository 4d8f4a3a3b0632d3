"""Reconciliation by probability, position bias and calibration on hand-worked records."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.calibration import calibration
from icrm_sgl.evaluation.metrics import compute_metrics, format_table


def order(slot: str, choice: str, probs: dict[str, float]) -> dict:
    return {"order": slot, "choice": choice, "error": None, "probabilities": probs}


def pair(rid: str, judgements: list[dict]) -> dict:
    return {"id": rid, "subset": "s", "mode": "pairwise", "judgements": judgements}


RECORDS = [
    # chosen-side per order: greedy +1 / -1; expected 0.6-0.4=+0.2 / -(0.55-0.45)=-0.1;
    # P(chosen better) 0.6 / 1-0.55=0.45. Choice: tie. Probability: +0.05, p 0.525.
    pair(
        "r1",
        [
            order("chosen_first", "A+", {"A+": 0.6, "B+": 0.4}),
            order("rejected_first", "A+", {"A+": 0.55, "B+": 0.45}),
        ],
    ),
    # greedy -2 / +1; expected -1.8+0.2=-1.6 / +0.7; p 0.1 / 1-0.15=0.85.
    # Choice: -0.5 (wrong). Probability: -0.45 (wrong), p 0.475. B won in both orders.
    pair(
        "r2",
        [
            order("chosen_first", "B++", {"B++": 0.9, "A++": 0.1}),
            order("rejected_first", "B+", {"B+": 0.7, "A=B": 0.3}),
        ],
    ),
    # greedy +2 / +2; expected 1.8 / 2.0; p 1.0 / 1.0: right either way, no flip.
    pair(
        "r3",
        [
            order("chosen_first", "A++", {"A++": 0.8, "A+": 0.2}),
            order("rejected_first", "B++", {"B++": 1.0}),
        ],
    ),
]


def test_both_reconciliations_by_hand():
    m = compute_metrics(RECORDS)
    choice = m["reconciliations"]["choice"]["overall"]
    prob = m["reconciliations"]["probability"]["overall"]
    assert (choice["correct"], choice["ties"], choice["flips"], choice["position_bias"]) == (
        1,
        1,
        2,
        2,
    )
    assert (prob["correct"], prob["ties"], prob["flips"], prob["position_bias"]) == (2, 0, 2, 2)
    assert (prob["accuracy"], prob["position_bias_rate"]) == (0.6667, 0.6667)
    # every verdict had probabilities: the probability reconciliation is the headline
    assert m["reconcile"] == "probability" and m["overall"] == prob
    assert m["verdicts"] == 6 and m["verdicts_without_probabilities"] == 0
    json.dumps(m)


def test_calibration_of_the_pairs_by_hand():
    cal = compute_metrics(RECORDS)["calibration"]
    # p_chosen 0.525 (right), 0.475 (prefers rejected at 0.525: wrong), 1.0 (right)
    low, *_, high = cal["bins"]
    assert (low["n"], low["confidence"], low["accuracy"]) == (2, 0.525, 0.5)
    assert (high["n"], high["confidence"], high["accuracy"]) == (1, 1.0, 1.0)
    assert cal["ece"] == pytest.approx(2 / 3 * 0.025, abs=1e-4)


def test_reconcile_choice_makes_the_greedy_numbers_the_headline():
    m = compute_metrics(RECORDS, reconcile="choice")
    assert m["reconcile"] == "choice" and m["overall"]["correct"] == 1
    text = format_table(m)
    assert "choice *" in text and "expected calibration error" in text
    with pytest.raises(InputError, match="reconcile must be one of"):
        compute_metrics(RECORDS, reconcile="vote")


def test_missing_probabilities_fall_back_to_the_label_and_are_counted():
    no_probs = {"order": "chosen_first", "choice": "A+", "error": None}
    m = compute_metrics([*RECORDS, pair("r4", [no_probs])])
    assert m["reconcile"] == "choice"  # not every verdict had probabilities
    assert m["verdicts_without_probabilities"] == 1
    assert m["reconciliations"]["probability"]["overall"]["correct"] == 3
    assert "1 of 7 verdicts came without probabilities" in format_table(m)


def test_bad_probabilities_name_the_record():
    bad = pair("bad", [order("chosen_first", "A+", {"A+": 0.6, "C": 0.4})])
    with pytest.raises(InputError, match=r"id 'bad'.*judgement 0.*unknown value"):
        compute_metrics([bad])


def test_individual_expected_scores_by_hand():
    record = {
        "id": "i",
        "subset": "s",
        "mode": "individual",
        "scores": {"chosen": 7, "rejected": 7},
        "probabilities": {"chosen": {"6": 0.5, "7": 0.5}, "rejected": {"7": 0.6, "8": 0.4}},
    }
    m = compute_metrics([record])
    assert m["reconciliations"]["choice"]["overall"]["ties"] == 1
    # expected scores 6.5 vs 7.4: wrong. P(chosen higher) = 0.5 * 0.5 * 0.6 (tie 7-7) = 0.15
    assert m["reconciliations"]["probability"]["overall"]["correct"] == 0
    assert m["calibration"]["bins"][-2]["confidence"] == 0.85


def test_calibration_bins_and_ece_by_hand():
    cal = calibration([0.95, 0.05, 0.7, 0.3, 0.5, 0.6])
    by_bin = {row["bin"]: row for row in cal["bins"]}
    # 0.5 prefers neither side: half right, confidence 0.5
    assert by_bin["0.50-0.60"] == {"bin": "0.50-0.60", "n": 1, "confidence": 0.5, "accuracy": 0.5}
    assert by_bin["0.60-0.70"]["n"] == 1  # 0.6 falls in the upper bin
    assert by_bin["0.70-0.80"]["accuracy"] == 0.5 and by_bin["0.90-1.00"]["accuracy"] == 0.5
    # gaps: 0 (0.5), 0.4 (0.6 right), 0.2 (0.7), 0.45 (0.95): (0 + 0.4 + 2*0.2 + 2*0.45) / 6
    assert cal["ece"] == pytest.approx((0.4 + 0.4 + 0.9) / 6, abs=1e-4)
    assert calibration([])["ece"] is None


def test_calibration_chart_is_a_png_and_skipped_without_probabilities(tmp_path):
    pytest.importorskip("matplotlib")
    from icrm_sgl.evaluation.calibration import write_calibration_chart

    path = write_calibration_chart(compute_metrics(RECORDS)["calibration"], tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_calibration_chart(calibration([]), tmp_path / "none.png") is None
