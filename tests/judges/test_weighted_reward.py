"""A reward that combines fields (``[reward] weights``, ``normalize``): the record's reward
is the weighted sum of each field's expected value, recomputed here from the record's
own ``field_probabilities``; sampled, from the values the verdict names."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from icrm_sgl import ICRM
from icrm_sgl.judges import as_judge, make_judge

RUBRIC = '''
name = "hhh"
template = """Rate the reply.
{$fields}
Reply: {$response}
JSON: """

[reward]
weights = { helpfulness = 0.5, honest = 0.3, tone = 0.2 }
normalize = true

[[fields]]
name = "helpfulness"
type = "int"
min = 1
max = 3

[[fields]]
name = "honest"
type = "bool"

[[fields]]
name = "tone"
type = "choice"
choices = ["kind", "flat", "rude"]
scores = [2, 1, -2]
'''
WEIGHTS = {"helpfulness": 0.5, "honest": 0.3, "tone": 0.2}
TONE = {"kind": 2.0, "flat": 1.0, "rude": -2.0}
REPLIES = [
    {"id": "kind", "response": "Happy to help: boil the water for ten minutes."},
    {"id": "rude", "response": "Figure it out yourself."},
]


class Rated(BaseModel):
    helpfulness: int = Field(ge=1, le=3)
    honest: bool
    tone: Literal["kind", "flat", "rude"]


def terms_by_hand(dists: dict[str, dict[str, float]], normalize: bool) -> dict[str, float]:
    """Each weighted field's expected value from its distribution (mapped to 0-1)."""

    def mean(dist, number):
        return sum(number(v) * p for v, p in dist.items()) / sum(dist.values())

    terms = {
        "helpfulness": mean(dists["helpfulness"], int),
        "honest": mean(dists["honest"], lambda v: 1.0 if v == "true" else 0.0),
        "tone": mean(dists["tone"], TONE.__getitem__),
    }
    if normalize:
        terms["helpfulness"] = (terms["helpfulness"] - 1) / 2
        terms["tone"] = (terms["tone"] + 2) / 4
    return terms


@pytest.fixture
def rubric(tmp_path):
    path = tmp_path / "hhh.toml"
    path.write_text(RUBRIC, "utf-8")
    return path


def check(meta: dict, normalize: bool) -> None:
    terms = terms_by_hand(meta["field_probabilities"], normalize)
    assert meta["reward_terms"] == pytest.approx(terms, abs=1e-5)
    expected = sum(WEIGHTS[key] * value for key, value in terms.items())
    assert meta["reward"] == pytest.approx(expected, abs=1e-5)
    assert "probabilities" not in meta  # no single reward field


def test_score_writes_the_weighted_normalized_reward_and_its_terms(run_cli, rubric, tmp_path):
    src, out = tmp_path / "replies.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in REPLIES), "utf-8")
    result = run_cli("score", src, "--judge", rubric, "-o", out)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["id"] for r in records] == ["kind", "rude"]
    for record in records:
        check(record["meta"], normalize=True)
        assert all(0 <= v <= 1 for v in record["meta"]["reward_terms"].values())


def test_without_normalize_the_terms_are_the_fields_expected_values(local_backend):
    judge = make_judge(
        Rated,
        "{$fields}\nReply: {$response}\nJSON: ",
        reward={"weights": WEIGHTS},
        scales={"tone": TONE},
    )
    with ICRM(judge=judge, num_shots=0, backend=local_backend) as model:
        (result,) = model.judge_batch(REPLIES[:1])
    assert result.ok, result.error
    check(result.meta, normalize=False)
    assert judge.reward_value(result.verdict, result.meta) == result.meta["reward"]


def test_a_sampled_verdict_combines_the_values_it_names(local_backend, rubric):
    judge = as_judge(rubric)
    with ICRM(judge=judge, num_shots=0, backend=local_backend) as model:
        (result,) = model.judge_batch(REPLIES[1:], temperature=0.9, top_p=0.95)
    assert result.ok, result.error
    verdict, meta = result.verdict, result.meta
    assert "field_probabilities" not in meta
    named = {
        "helpfulness": (verdict["helpfulness"] - 1) / 2,
        "honest": float(verdict["honest"]),
        "tone": (TONE[verdict["tone"]] + 2) / 4,
    }
    assert meta["reward_terms"] == pytest.approx(named)
    assert meta["reward"] == pytest.approx(sum(WEIGHTS[k] * v for k, v in named.items()))
    assert judge.reward_value(verdict, {}) == pytest.approx(meta["reward"])


def test_weights_and_normalize_are_part_of_the_judge_identity(rubric, tmp_path):
    other = tmp_path / "other.toml"
    prints = {as_judge(rubric).fingerprint()}
    for old, new in (("0.5", "0.6"), ("normalize = true", "normalize = false")):
        other.write_text(RUBRIC.replace(old, new, 1), "utf-8")
        prints.add(as_judge(other).fingerprint())
    assert len(prints) == 3
    assert as_judge(rubric).has_reward and as_judge(rubric).reward is None
