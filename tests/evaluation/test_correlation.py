"""Pearson, Spearman and Kendall against scipy, and an eval run over human scores."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.evaluation.correlation import kendall, pearson, ranks, spearman

stats = pytest.importorskip("scipy.stats")

VECTORS = [
    ([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0]),
    ([3.2, 1.5, 1.5, 4.0, 2.2, 2.2, 5.1], [4, 2, 3, 5, 3, 1, 4]),  # ties on both sides
    ([1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]),  # perfectly reversed, with ties
    ([0.1, 0.9, 0.4, 0.4], [10, 10, 10, 20]),
]


@pytest.mark.parametrize(("x", "y"), VECTORS)
def test_the_three_correlations_match_scipy(x, y):
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert kendall(x, y) == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12)  # tau-b


def test_ranks_share_the_mean_rank_of_ties():
    assert ranks([10, 20, 20, 5]) == list(stats.rankdata([10, 20, 20, 5]))


def test_undefined_correlations_are_none():
    for f in (pearson, spearman, kendall):
        assert f([1, 2, 3], [4, 4, 4]) is None  # one side constant
        assert f([1], [2]) is None
    with pytest.raises(ValueError, match="different lengths"):
        pearson([1, 2], [1])


RUBRIC = """name = "tiny_score"
reward = "score"
template = \"\"\"Rate the reply from 1 (wrong) to 3 (right).
Question: {$user_query}
Reply: {$model_output}
{$fields}
\"\"\"

[[fields]]
name = "score"
type = "int"
min = 1
max = 3
"""

ROWS = [
    {"q": "What is 3 + 4?", "r": "7", "human": 5},
    {"q": "What is 3 + 4?", "r": "12", "human": 1},
    {"q": "Capital of France?", "r": "Paris", "human": "4"},
    {"q": "Capital of France?", "r": "Berlin", "human": 2},
]


def test_eval_over_human_scores_reports_the_correlations(tmp_path, run_cli):
    source = tmp_path / "feedback.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    judge = tmp_path / "rubric.toml"
    judge.write_text(RUBRIC)
    out = tmp_path / "out"
    proc = run_cli(
        "eval", source, "--columns", "prompt=q,reply=r,score=human", "--judge", judge,
        "--output-dir", out, "--num-shots", "0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["human_score"] for r in records] == [5.0, 1.0, 4.0, 2.0]
    rewards = [r["reward"] for r in records]
    humans = [r["human_score"] for r in records]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kind"] == "correlation" and metrics["judge"]["name"] == "tiny_score"
    overall = metrics["overall"]
    assert (overall["n"], overall["failures"]) == (4, 0)
    for name, reference in (
        ("pearson", stats.pearsonr),
        ("spearman", stats.spearmanr),
        ("kendall", stats.kendalltau),
    ):
        assert overall[name] == pytest.approx(reference(rewards, humans)[0], abs=1e-4)
    assert "spearman" in proc.stdout and (out / "chart.png").exists()
