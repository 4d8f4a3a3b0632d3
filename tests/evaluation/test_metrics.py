"""Metrics over judged records: reconciliation, flips, ties, failures, RewardBench scores."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.metrics import compute_metrics, format_table, reconcile
from icrm_sgl.evaluation.rewardbench import EXAMPLE_COUNTS, SUBSET_MAPPING


def ok(order: str, choice: str) -> dict:
    return {"order": order, "choice": choice, "error": None}


def err(order: str) -> dict:
    return {"order": order, "choice": None, "error": "engine error: boom"}


def pairwise(rid: str, subset: str, judgements: list[dict], margin: float | None) -> dict:
    return {
        "id": rid,
        "subset": subset,
        "mode": "pairwise",
        "judgements": judgements,
        "margin": margin,
        "failed": margin is None,
    }


def individual(rid: str, subset: str, chosen: int | None, rejected: int | None) -> dict:
    margin = None if chosen is None or rejected is None else chosen - rejected
    errors = {
        side: "engine error"
        for side, s in (("chosen", chosen), ("rejected", rejected))
        if s is None
    }
    return {
        "id": rid,
        "subset": subset,
        "mode": "individual",
        "scores": {"chosen": chosen, "rejected": rejected},
        "errors": errors,
        "margin": margin,
        "failed": margin is None,
    }


# ----------------------------------------------------------------------------- reconcile


def test_reconcile_both_orders_average():
    # chosen shown as A and called A++ (+2); shown as B and called B+ (+1): mean 1.5
    assert reconcile([ok("chosen_first", "A++"), ok("rejected_first", "B+")]) == 1.5


def test_reconcile_negates_rejected_first():
    assert reconcile([ok("rejected_first", "A+")]) == -1.0
    assert reconcile([ok("rejected_first", "B++")]) == 2.0
    assert reconcile([ok("chosen_first", "B+")]) == -1.0


def test_reconcile_one_failed_order_uses_the_other():
    assert reconcile([ok("chosen_first", "A+"), err("rejected_first")]) == 1.0
    assert reconcile([err("chosen_first"), ok("rejected_first", "A=B")]) == 0.0


def test_reconcile_both_failed_is_none():
    assert reconcile([err("chosen_first"), err("rejected_first")]) is None
    assert reconcile([{"order": "chosen_first", "choice": None, "error": None}]) is None


def test_reconcile_rejects_bad_input():
    with pytest.raises(InputError, match="choice must be one of"):
        reconcile([ok("chosen_first", "A+++")])
    with pytest.raises(InputError, match="order must be one of"):
        reconcile([ok("sideways", "A+")])
    with pytest.raises(InputError, match="non-empty list"):
        reconcile([])


# ----------------------------------------------------------------------------- pairwise


FLIP_RECORDS = [
    # agree, chosen wins: +1 and +2 -> 1.5, no flip
    pairwise("win", "s", [ok("chosen_first", "A+"), ok("rejected_first", "B++")], 1.5),
    # position bias: A+ in both orders -> +1 and -1 -> margin 0 (tie), flip
    pairwise("bias", "s", [ok("chosen_first", "A+"), ok("rejected_first", "A+")], 0.0),
    # tie vs win: 0 and +1 -> 0.5, correct but a flip
    pairwise("tiewin", "s", [ok("chosen_first", "A=B"), ok("rejected_first", "B+")], 0.5),
    # both ties: 0 and 0 -> tie, no flip
    pairwise("tie", "t", [ok("chosen_first", "A=B"), ok("rejected_first", "A=B")], 0.0),
    # one order failed: -1 only -> wrong, not counted for flips
    pairwise("half", "t", [ok("chosen_first", "B+"), err("rejected_first")], -1.0),
    # both failed -> failure, counted wrong
    pairwise("fail", "t", [err("chosen_first"), err("rejected_first")], None),
    # a single order ("ab" mode) -> never counted for flips
    pairwise("single", "t", [ok("chosen_first", "A++")], 2.0),
]


def test_pairwise_counts_flips_ties_failures():
    m = compute_metrics(FLIP_RECORDS)
    assert m["mode"] == "pairwise" and m["n"] == 7
    assert m["per_subset"]["s"] == {
        "n": 3,
        "accuracy": 0.6667,  # win, tiewin
        "correct": 2,
        "ties": 1,  # bias
        "tie_rate": 0.3333,
        "failures": 0,
        "failure_rate": 0.0,
        "flips": 2,  # bias, tiewin
        "flip_rate": 0.6667,
        "flip_n": 3,
        "position_bias": 1,  # bias: A won in both orders
        "position_bias_rate": 0.3333,
        "tie_labels": 0,
    }
    assert m["per_subset"]["t"] == {
        "n": 4,
        "accuracy": 0.25,  # single; the failure counts as wrong
        "correct": 1,
        "ties": 1,
        "tie_rate": 0.25,
        "failures": 1,
        "failure_rate": 0.25,
        "flips": 0,
        "flip_rate": 0.0,
        "flip_n": 1,  # only "tie" has two valid orders
        "position_bias": 0,
        "position_bias_rate": 0.0,
        "tie_labels": 0,
    }
    overall = m["overall"]
    assert (overall["n"], overall["correct"], overall["ties"], overall["failures"]) == (7, 3, 2, 1)
    assert (overall["accuracy"], overall["flips"], overall["flip_n"]) == (0.4286, 2, 4)
    assert overall["flip_rate"] == 0.5
    assert "rewardbench" not in m  # subsets s and t are not RewardBench subsets
    json.dumps(m)


def test_choice_distribution_keyed_by_true_better_side():
    m = compute_metrics(FLIP_RECORDS)
    # chosen_first (truth A): A+, A+, A=B, A=B, B+, A++ ; rejected_first (truth B): B++, A+,
    # B+, A=B ; errors are not counted.
    assert m["choice_distribution"] == {
        "A": {"A++": 1, "A+": 2, "A=B": 2, "B+": 1, "B++": 0},
        "B": {"A++": 0, "A+": 1, "A=B": 1, "B+": 1, "B++": 1},
    }
    assert "score_histogram" not in m


def test_no_flip_rate_without_two_orders():
    m = compute_metrics([pairwise("a", "s", [ok("rejected_first", "B+")], 1.0)])
    assert m["per_subset"]["s"]["flip_rate"] is None and m["per_subset"]["s"]["flip_n"] == 0


def test_stored_margin_must_match_judgements():
    bad = pairwise("x", "s", [ok("chosen_first", "A+")], -1.0)
    with pytest.raises(InputError, match=r"record 0 \(id 'x'\): stored margin -1.0 disagrees"):
        compute_metrics([bad])
    bad = {**pairwise("y", "s", [ok("chosen_first", "A+")], 1.0), "failed": True}
    with pytest.raises(InputError, match="'failed' is True"):
        compute_metrics([bad])


def test_records_without_stored_margin_are_scored():
    record = {
        "id": "z",
        "subset": "s",
        "mode": "pairwise",
        "judgements": [ok("chosen_first", "A+")],
    }
    assert compute_metrics([record])["overall"]["correct"] == 1


def test_mixed_or_missing_modes_and_empty_input():
    with pytest.raises(InputError, match="share one mode"):
        compute_metrics([FLIP_RECORDS[0], individual("i", "s", 5, 3)])
    with pytest.raises(InputError, match="share one mode"):
        compute_metrics([{"id": "x", "subset": "s"}])
    with pytest.raises(InputError, match="no judged records"):
        compute_metrics([])
    with pytest.raises(InputError, match="missing or empty 'subset'"):
        compute_metrics([{**FLIP_RECORDS[0], "subset": ""}])


# ----------------------------------------------------------------------------- individual


def test_individual_metrics_and_histogram():
    records = [
        individual("a", "s", 8, 3),  # correct
        individual("b", "s", 5, 5),  # tie
        individual("c", "s", 2, 9),  # wrong
        individual("d", "s", 7, None),  # failed: counted wrong
    ]
    m = compute_metrics(records)
    s = m["per_subset"]["s"]
    assert (s["n"], s["correct"], s["ties"], s["failures"]) == (4, 1, 1, 1)
    assert (s["accuracy"], s["tie_rate"], s["failure_rate"]) == (0.25, 0.25, 0.25)
    assert (s["flips"], s["flip_n"], s["flip_rate"]) == (0, 0, None)
    hist = m["score_histogram"]
    assert list(hist["chosen"]) == [str(k) for k in range(1, 11)]
    assert {k: v for k, v in hist["chosen"].items() if v} == {"2": 1, "5": 1, "7": 1, "8": 1}
    assert {k: v for k, v in hist["rejected"].items() if v} == {"3": 1, "5": 1, "9": 1}
    assert "choice_distribution" not in m
    json.dumps(m)


def test_individual_bad_score():
    with pytest.raises(InputError, match=r"chosen: score must be one of 1, 2, .*10, got 11"):
        compute_metrics([individual("a", "s", 11, 3)])


# ----------------------------------------------------------------------------- RewardBench

# Per subset: (wins, losses, ties, failures). Ties and failures count as wrong.
RB_PLAN = {
    "alpacaeval-easy": (3, 1, 0, 0),  # 3/4 = 0.75
    "mt-bench-easy": (1, 0, 1, 0),  # 1/2 = 0.5
    "mt-bench-hard": (0, 2, 0, 0),  # 0/2 = 0.0
    "llmbar-natural": (2, 1, 0, 1),  # 2/4 = 0.5
    "refusals-dangerous": (2, 0, 0, 0),  # 2/2 = 1.0
    "xstest-should-refuse": (1, 1, 1, 1),  # 1/4 = 0.25
    "donotanswer": (1, 1, 0, 0),  # 1/2 = 0.5
    "math-prm": (1, 2, 1, 0),  # 1/4 = 0.25
    "hep-python": (2, 0, 0, 0),  # 2/2 = 1.0
}
OUTCOMES = {
    "win": ([ok("chosen_first", "A+"), ok("rejected_first", "B+")], 1.0),
    "loss": ([ok("chosen_first", "B++"), ok("rejected_first", "A++")], -2.0),
    "tie": ([ok("chosen_first", "A=B"), ok("rejected_first", "A=B")], 0.0),
    "fail": ([err("chosen_first"), err("rejected_first")], None),
}


def rewardbench_records(plan: dict[str, tuple[int, int, int, int]]) -> list[dict]:
    records = []
    for subset, counts in plan.items():
        for kind, count in zip(OUTCOMES, counts, strict=True):
            for _ in range(count):
                judgements, margin = OUTCOMES[kind]
                records.append(pairwise(str(len(records)), subset, judgements, margin))
    return records


def test_constants_match_the_official_ones():
    assert sum(len(v) for v in SUBSET_MAPPING.values()) == len(EXAMPLE_COUNTS) == 23
    assert set(EXAMPLE_COUNTS) == {s for v in SUBSET_MAPPING.values() for s in v}
    assert EXAMPLE_COUNTS["math-prm"] == 984 == 6 * EXAMPLE_COUNTS["hep-python"]
    assert (EXAMPLE_COUNTS["xstest-should-refuse"], EXAMPLE_COUNTS["xstest-should-respond"]) == (
        250,
        154,
    )


def test_rewardbench_section_scores_by_hand():
    m = compute_metrics(rewardbench_records(RB_PLAN))
    rb = m["rewardbench"]
    # Chat:      (0.75*100 + 0.5*28) / (100+28)            = 89/128     = 0.6953125
    # Chat Hard: (0.0*37 + 0.5*100) / (37+100)             = 50/137     = 0.3649635
    # Safety:    (1.0*100 + 0.25*250 + 0.5*136) / 486      = 230.5/486  = 0.4742798
    # Reasoning: (0.25*984 + 1.0*164) / (984+164)          = 410/1148   = 0.3571429
    #            (with math-prm's real 447: 275.75/611     = 0.4513)
    assert rb["sections"] == {
        "Chat": 0.6953,
        "Chat Hard": 0.365,
        "Safety": 0.4743,
        "Reasoning": 0.3571,
    }
    # score = (0.6953125 + 0.3649635 + 0.4742798 + 0.3571429) / 4 = 0.4729247
    assert rb["score"] == 0.4729
    # plain mean = (0.75+0.5+0+0.5+1+0.25+0.5+0.25+1) / 9 = 4.75/9 = 0.5277778
    assert rb["plain_mean"] == 0.5278
    assert rb["score"] != rb["plain_mean"]
    assert rb["missing_subsets"] == [
        "alpacaeval-length",
        "alpacaeval-hard",
        "mt-bench-med",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
        "refusals-offensive",
        "xstest-should-respond",
        "hep-cpp",
        "hep-go",
        "hep-java",
        "hep-js",
        "hep-rust",
    ]
    assert rb["unknown_subsets"] == []
    # failures and ties are wrong, and reported per subset
    xs = m["per_subset"]["xstest-should-refuse"]
    assert (xs["accuracy"], xs["ties"], xs["failures"]) == (0.25, 1, 1)
    assert list(m["per_subset"]) == sorted(RB_PLAN)


def test_rewardbench_section_without_subsets_is_left_out():
    plan = {"alpacaeval-easy": (3, 1, 0, 0), "mt-bench-hard": (1, 1, 0, 0)}
    rb = compute_metrics(rewardbench_records(plan))["rewardbench"]
    # Chat = 0.75 (one subset); Chat Hard = 0.5; score = (0.75 + 0.5) / 2 = 0.625
    assert rb["sections"] == {"Chat": 0.75, "Chat Hard": 0.5}
    assert rb["score"] == 0.625
    assert "Safety" not in rb["sections"] and "donotanswer" in rb["missing_subsets"]


def test_rewardbench_flag_overrides_detection():
    records = rewardbench_records({"alpacaeval-easy": (1, 0, 0, 0)})
    assert "rewardbench" in compute_metrics(records)
    assert "rewardbench" not in compute_metrics(records, rewardbench=False)
    mixed = [*records, pairwise("other", "my-subset", *OUTCOMES["loss"])]
    assert "rewardbench" not in compute_metrics(mixed)
    rb = compute_metrics(mixed, rewardbench=True)["rewardbench"]
    # Chat = 1.0 from alpacaeval-easy; plain mean over both subsets = (1.0 + 0.0) / 2
    assert (rb["score"], rb["plain_mean"], rb["unknown_subsets"]) == (1.0, 0.5, ["my-subset"])


# ----------------------------------------------------------------------------- table


def test_format_table_pairwise_rewardbench():
    text = format_table(compute_metrics(rewardbench_records(RB_PLAN)))
    lines = text.splitlines()
    assert lines[0] == "pairwise judging, 26 pairs"
    row = next(line for line in lines if line.startswith("xstest-should-refuse"))
    # n, failures, pairs with two valid orders, then accuracy, ties, flips and position
    # bias for the choice and the probability reconciliation (equal without probabilities)
    rates = ["25.0%", "25.0%", "0.0%", "0.0%"]
    assert row.split() == ["xstest-should-refuse", "4", "25.0%", "3", *rates, *rates]
    assert "choice *" in text  # no probabilities: the choice reconciliation is the headline
    assert any(line.split()[:2] == ["overall", "26"] for line in lines)
    assert "truth A" in text and "RewardBench" in text and "47.3%" in text
    assert "missing subsets (14)" in text


def test_format_table_individual():
    text = format_table(
        compute_metrics([individual("a", "s", 8, 3), individual("b", "s", None, 2)])
    )
    assert "individual judging, 2 pairs" in text
    row = next(line for line in text.splitlines() if line.startswith("s "))
    rates = ["50.0%", "0.0%", "-", "-"]
    assert row.split() == ["s", "2", "50.0%", "0", *rates, *rates]
    assert "chosen" in text and "rejected" in text and "RewardBench" not in text
