"""Coverage of the packaged pools, asserted from the data itself."""

from collections import Counter

import pytest

from icrm_sgl.judges import default_judge
from icrm_sgl.judges.shots import load_shots, sample_shots
from icrm_sgl.judges.verdicts import choice_winner
from icrm_sgl.plumbing.conversation import validate_conversation

CATEGORIES = {
    "chat",
    "factual",
    "coding",
    "math",
    "instruction_following",
    "safety",
    "multi_turn",
}


@pytest.mark.parametrize("rm_type", ["individual", "pairwise"])
def test_pool_size_and_categories(rm_type):
    pool = load_shots(default_judge(rm_type))
    assert len(pool) >= 24
    per_category = Counter(s["category"] for s in pool)
    assert set(per_category) == CATEGORIES
    assert min(per_category.values()) >= 3


@pytest.mark.parametrize("rm_type", ["individual", "pairwise"])
def test_multi_turn_shots_have_history(rm_type):
    key = "conversation" if rm_type == "individual" else "conversation_A"
    for shot in load_shots(default_judge(rm_type)):
        if shot["category"] == "multi_turn":
            turns = validate_conversation(shot[key])
            assert sum(t["role"] == "user" for t in turns) >= 2, shot["id"]


def test_individual_scores_cover_every_band_without_dominance():
    scores = [s["feedback"]["score"] for s in load_shots(default_judge("individual"))]
    assert set(scores) == set(range(1, 11))
    bands = Counter((score - 1) // 2 for score in scores)
    assert len(bands) == 5
    assert max(bands.values()) / len(scores) <= 0.35


def test_pairwise_choices_balanced_and_ties_rare():
    choices = Counter(s["feedback"]["choice"] for s in load_shots(default_judge("pairwise")))
    assert set(choices) == {"A++", "A+", "A=B", "B+", "B++"}
    sides = Counter(choice_winner(c) for c in choices.elements())
    assert abs(sides["A"] - sides["B"]) <= 2
    assert sides["tie"] <= 0.15 * sum(choices.values())


@pytest.mark.parametrize("rm_type", ["individual", "pairwise"])
def test_balanced_selection_is_deterministic_and_spreads(rm_type):
    pool = load_shots(default_judge(rm_type))
    first = sample_shots(pool, 7, "balanced", seed=5)
    assert first == sample_shots(pool, 7, "balanced", seed=5)
    assert {s["category"] for s in first} == CATEGORIES
    assert len({s["id"] for s in first}) == 7
    labels = Counter(str(s["feedback"].get("score", s["feedback"].get("choice"))) for s in first)
    assert max(labels.values()) <= 2
    assert sample_shots(pool, 3, "balanced", seed=5) == first[:3]
    assert [s["id"] for s in sample_shots(pool, 7, "balanced", seed=6)] != [s["id"] for s in first]
