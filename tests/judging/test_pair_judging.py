"""Debiased pairwise judging (both orders) through the API and ``score --both-orders``."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.judges.verdicts import SWAPPED
from icrm_sgl.judging.pair_judging import judge_pairs
from tests.conftest import EXAMPLES, FAST

MARGINS = {"A++": 2, "A+": 1, "A=B": 0, "B+": -1, "B++": -2}


def test_both_orders_reconciles_the_two_verdicts(pairwise_model, pairwise_example):
    pair = pairwise_model.judge_pair(**pairwise_example, both_orders=True, **FAST)
    result = pair.result()
    assert set(result["verdicts"]) == {"A/B", "B/A"}
    ab, ba = pair.meta["orders"]["A/B"], pair.meta["orders"]["B/A"]
    # by hand: the B/A distribution read from A's side, averaged with A/B's
    mean = {c: (ab["probabilities"][c] + ba["probabilities"][SWAPPED[c]]) / 2 for c in MARGINS}
    assert result["expected_margin"] == pytest.approx(
        sum(MARGINS[c] * p for c, p in mean.items()), abs=1e-4
    )
    assert result["p_a_better"] == pytest.approx(
        mean["A++"] + mean["A+"] + mean["A=B"] / 2, abs=1e-4
    )
    first = MARGINS[result["verdicts"]["A/B"]["choice"]]
    second = -MARGINS[result["verdicts"]["B/A"]["choice"]]
    assert result["greedy_margin"] == (first + second) / 2
    assert result["flipped"] == ((first > 0) - (first < 0) != (second > 0) - (second < 0))
    assert result["from_probabilities"] is True
    # the B/A prompt repeats the A/B prompt up to the first reply: its prefix is reused
    assert ba["cached_tokens"] > ab["prompt_tokens"] // 2


def test_one_order_has_no_flip(pairwise_model, pairwise_example):
    pair = pairwise_model.judge_pair(**pairwise_example, **FAST)
    result = pair.result()
    assert list(result["verdicts"]) == ["A/B"]
    assert result["flipped"] is None
    assert result["expected_margin"] == pytest.approx(
        pair.meta["orders"]["A/B"]["expected_margin"], abs=1e-5
    )


def test_bad_pair_in_a_batch_is_reported_once(pairwise_model, pairwise_example):
    bad = {"id": "bad", "conversation_A": [{"role": "user", "content": "hi"}]}
    results = list(
        judge_pairs(pairwise_model, [bad, {**pairwise_example, "id": "ok"}], True, **FAST)
    )
    assert [r.id for r in results] == ["bad", "ok"]
    assert not results[0].ok and "example bad#ab" in results[0].error
    assert results[1].ok and results[1].meta["prompt_tokens"] > 0


def test_individual_model_refuses_pairs(individual_model, pairwise_example):
    with pytest.raises(InputError, match="pairwise"):
        list(judge_pairs(individual_model, [pairwise_example], True))


def test_a_pair_judge_without_a_reward_field_is_refused_when_it_is_built():
    """Both orders are read through the pair's choice field: a judge without one is refused
    where it is made, before any engine or example."""
    from icrm_sgl.judges import builtin_judge

    with pytest.raises(InputError, match="pair: the reward must be a choice field"):
        replace(builtin_judge("pairwise"), reward=None, scale={})


@pytest.fixture
def cli(run_cli):
    return lambda *args: run_cli("score", *args, "--num-shots", "0", "--max-tokens", "15")


def test_score_both_orders_prints_the_reconciled_result(cli):
    proc = cli(str(EXAMPLES / "test_pairwise.json"), "--both-orders")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert 0 <= result["p_a_better"] <= 1 and -2 <= result["expected_margin"] <= 2
    assert isinstance(result["flipped"], bool)
    assert set(result["verdicts"]) == {"A/B", "B/A"}


def test_score_both_orders_needs_pairwise_examples(cli):
    proc = cli(str(EXAMPLES / "test_individual.json"), "--both-orders")
    assert proc.returncode == 2
    assert "--both-orders" in proc.stderr and "Traceback" not in proc.stderr
