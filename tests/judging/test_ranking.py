"""Ranking responses: the sorting scheme's comparison count, and both methods end to end."""

from __future__ import annotations

import json
import math
import random

import pytest

from icrm_sgl import ICRM
from icrm_sgl.errors import InputError
from icrm_sgl.judging.ranking import binary_insertion, history_turns
from tests.conftest import FAST

ITEM = {
    "id": "capital",
    "prompt": "What is the capital of France?",
    "responses": [
        "Paris is the capital of France.",
        "I think it is Lyon.",
        "The capital of France is Paris, on the Seine.",
        "France.",
    ],
}


@pytest.mark.parametrize("n", [1, 2, 4, 7, 16, 33])
def test_binary_insertion_sorts_with_few_comparisons(n):
    values = random.Random(n).sample(range(1000), n)
    calls = []

    def better(i, j):
        calls.append((i, j))
        return values[i] > values[j]

    order = binary_insertion(n, better)
    assert [values[i] for i in order] == sorted(values, reverse=True)
    bound = sum(math.ceil(math.log2(k)) for k in range(2, n + 1))  # 5 for 4, 49 for 16
    assert len(calls) <= bound
    assert n < 4 or bound < n * (n - 1) // 2  # fewer than comparing every pair once


def test_history_turns_needs_a_prompt_or_a_user_ending_conversation():
    assert history_turns("hi", None, "x") == [{"role": "user", "content": "hi"}]
    with pytest.raises(InputError, match="give a prompt or a conversation"):
        history_turns("hi", [{"role": "user", "content": "hi"}], "x")
    with pytest.raises(InputError, match="end with a user turn"):
        history_turns(None, [{"role": "assistant", "content": "hi"}], "x")


def test_rank_by_expected_scores(individual_model):
    ranking = individual_model.rank(ITEM["responses"], prompt=ITEM["prompt"], **FAST).as_dict()
    assert sorted(ranking["order"]) == [0, 1, 2, 3] and ranking["judge_calls"] == 4
    expected = [r["expected_score"] for r in ranking["responses"]]
    assert expected == sorted(expected, reverse=True)
    assert [r["rank"] for r in ranking["responses"]] == [1, 2, 3, 4]


def test_rank_by_comparisons_in_both_orders(local_backend):
    model = ICRM(rm_type="pairwise", num_shots=0, backend=local_backend)
    responses = ITEM["responses"][:3]
    ranking = model.rank(responses, prompt=ITEM["prompt"], max_tokens=15)
    assert sorted(ranking.order) == [0, 1, 2]
    assert len(ranking.comparisons) <= 3 and ranking.judge_calls == 2 * len(ranking.comparisons)
    for c in ranking.comparisons:  # every decision agrees with the final order
        a_first = ranking.order.index(c["a"]) < ranking.order.index(c["b"])
        assert (c["p_a_better"] > 0.5) == a_first
    assert all(0 <= r["win_probability"] <= 1 for r in ranking.responses)


@pytest.fixture
def rank_cli(run_cli):
    return lambda *args: run_cli("rank", *args, "--num-shots", "0", "--max-tokens", "15")


def test_rank_cli_orders_four_responses(tmp_path, rank_cli):
    path = tmp_path / "item.json"
    path.write_text(json.dumps(ITEM))
    proc = rank_cli(str(path))
    assert proc.returncode == 0, proc.stderr
    ranking = json.loads(proc.stdout)
    assert sorted(ranking["order"]) == [0, 1, 2, 3] and ranking["method"] == "scores"


def test_rank_cli_bad_items_in_a_batch_are_skipped(tmp_path, rank_cli):
    path = tmp_path / "items.jsonl"
    one = {"id": "one", "prompt": "Hi", "responses": ["only one"]}
    none = {"id": "none", "responses": ["a", "b"]}
    path.write_text(json.dumps(one) + "\n" + json.dumps(none) + "\n{oops\n")
    proc = rank_cli(str(path))
    assert proc.returncode == 2
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "at least two" in records[0]["error"] and "give a prompt" in records[1]["error"]
    assert "skipped line 1 (id one): " in proc.stderr
    assert f"skipped {path}: line 3: invalid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
