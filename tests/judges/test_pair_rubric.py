"""A rubric that compares two replies (``[pair]``): judged in both orders and reconciled
exactly as the built-in pairwise judge is, on the real local engine (SmolLM2)."""

from __future__ import annotations

import json

import pytest

from icrm_sgl import ICRM
from icrm_sgl.judges import as_judge, builtin_judge
from icrm_sgl.judging.pair_judging import judge_pair

RUBRIC = '''
name = "tiny_pair"
reward = "winner"
template = """Which reply answers the question better?
{$fields}
Question: {$question}
Reply A: {$response_a}
Reply B: {$response_b}
JSON: """

[[fields]]
name = "winner"
type = "choice"
choices = ["A", "B", "tie"]
scores = [1, -1, 0]

[pair]
replies = ["response_a", "response_b"]
swap = { A = "B", B = "A", tie = "tie" }
'''
PAIRS = [
    {"id": "sky", "question": "What colour is the sky?", "response_a": "Blue.",
     "response_b": "The sky is made of cheese."},
    {"id": "sum", "question": "What is 2 + 2?", "response_a": "5", "response_b": "4"},
]  # fmt: skip
MARGIN = {"A": 1, "B": -1, "tie": 0}
#: The keys of a pair's reconciled result, as the built-in pairwise judge writes them.
RESULT_KEYS = {
    "p_a_better", "expected_margin", "greedy_margin", "flipped", "from_probabilities", "verdicts",
}  # fmt: skip


@pytest.fixture
def rubric(tmp_path):
    path = tmp_path / "tiny_pair.toml"
    path.write_text(RUBRIC, "utf-8")
    return path


def reconciled_by_hand(ab: dict[str, float], ba: dict[str, float]) -> tuple[float, float]:
    """P(A better) and the expected margin from both orders' distributions, the B/A one
    read from A's side (there A is shown second, so B wins for A)."""
    p_ab = ab["A"] + ab["tie"] / 2
    p_ba = ba["B"] + ba["tie"] / 2
    return (p_ab + p_ba) / 2, ((ab["A"] - ab["B"]) + (ba["B"] - ba["A"])) / 2


def test_the_builtin_pairwise_judge_is_a_pair_judge_like_any_rubric(rubric):
    builtin, mine = builtin_judge("pairwise"), as_judge(rubric)
    assert [builtin.margin(c) for c in ("A++", "A+", "A=B", "B+", "B++")] == [2, 1, 0, -1, -2]
    assert [mine.margin(c) for c in ("A", "B", "tie")] == [1, -1, 0]
    assert mine.pair is not None and mine.pair.sides == ("response_a", "response_b")


def test_score_both_orders_reconciles_a_pair_rubric(run_cli, rubric, tmp_path):
    src, out = tmp_path / "pairs.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), "utf-8")
    result = run_cli("score", src, "--judge", rubric, "--both-orders", "-o", out)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["id"] for r in records] == ["sky", "sum"]
    for record in records:
        got = record["result"]
        assert set(got) == RESULT_KEYS
        assert set(got["verdicts"]) == {"A/B", "B/A"} and got["from_probabilities"]
        orders = record["meta"]["orders"]
        p_a, margin = reconciled_by_hand(
            orders["A/B"]["probabilities"], orders["B/A"]["probabilities"]
        )
        assert got["p_a_better"] == pytest.approx(p_a, abs=1e-5)
        assert got["expected_margin"] == pytest.approx(margin, abs=1e-5)
        greedy = [
            MARGIN[got["verdicts"]["A/B"]["winner"]],
            -MARGIN[got["verdicts"]["B/A"]["winner"]],
        ]
        assert got["greedy_margin"] == sum(greedy) / 2
        assert got["flipped"] == (len({(m > 0) - (m < 0) for m in greedy}) > 1)


def test_judge_pair_from_python_swaps_the_replies(local_backend, rubric):
    with ICRM(judge=rubric, num_shots=0, backend=local_backend) as model:
        result = judge_pair(model, PAIRS[1], both_orders=True)
    orders = result.meta["orders"]
    p_a, _ = reconciled_by_hand(orders["A/B"]["probabilities"], orders["B/A"]["probabilities"])
    assert result.ok and result.result()["p_a_better"] == pytest.approx(p_a, abs=1e-5)
    # the B/A call saw the replies swapped: its prompt differs from the A/B call's
    assert orders["A/B"]["probabilities"] != orders["B/A"]["probabilities"]
