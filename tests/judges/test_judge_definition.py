"""What a judge derives from its definition, without a model: fields, schema, numbers,
identity, and the built-in judges' definitions."""

from enum import StrEnum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from icrm_sgl.judges import as_judge, judge_for, make_judge


class Grade(StrEnum):
    PASS = "pass"
    FAIL = "fail"


class Verdict(BaseModel):
    why: str
    grade: Grade
    stars: int = Field(ge=1, le=3)
    flag: bool
    tone: Literal["warm", "cold"]


def judge(**options):
    return make_judge(Verdict, "{$fields}\nReply: {$response}\n", **options)


def test_fields_are_classified_in_order_with_their_values():
    kinds = [(f.key, f.kind, f.values) for f in judge().fields]
    assert kinds == [
        ("why", "text", ()),
        ("grade", "choice", ("pass", "fail")),
        ("stars", "int", ("1", "2", "3")),
        ("flag", "bool", ("true", "false")),
        ("tone", "choice", ("warm", "cold")),
    ]


def test_schemas_forbid_extra_keys_and_list_integers_for_grammars():
    made = judge()
    assert made.json_schema()["additionalProperties"] is False
    assert made.grammar_schema()["properties"]["stars"]["enum"] == [1, 2, 3]


def test_meta_carries_each_distribution_expected_values_and_the_reward():
    made = judge(reward="grade", scale={"pass": 1.0, "fail": 0.0})
    meta = made.probability_meta(
        {
            "grade": {"pass": 0.8, "fail": 0.2},
            "stars": {"1": 0.5, "2": 0.0, "3": 0.5},
            "flag": {"true": 0.25, "false": 0.75},
        }
    )
    assert meta["probabilities"] == {"pass": 0.8, "fail": 0.2}
    assert meta["expected"] == {"stars": 2.0, "flag": 0.25}
    assert meta["reward"] == pytest.approx(0.8)
    verdict = {"why": "", "grade": "fail", "stars": 1, "flag": True, "tone": "warm"}
    assert made.reward_value(verdict, {}) == 0.0
    assert made.reward_value(verdict, meta) == pytest.approx(0.8)


def test_the_fingerprint_follows_the_definition():
    assert judge().fingerprint() == judge().fingerprint()
    other = make_judge(Verdict, "{$fields}\nAnswer: {$response}\n")
    assert other.fingerprint() != judge().fingerprint()
    assert judge(reward="stars").fingerprint() != judge().fingerprint()


def test_builtin_judges_keep_their_public_meta_names():
    individual, pairwise = as_judge("individual"), as_judge("pairwise")
    assert individual.probability_meta({"score": {"7": 1.0}}) == {
        "probabilities": {"7": 1.0},
        "expected_score": 7.0,
    }
    assert pairwise.probability_meta({"choice": {"A+": 0.5, "B+": 0.5}})["expected_margin"] == 0
    assert pairwise.pair is not None and individual.pair is None


@pytest.mark.parametrize(
    "example,name",
    [
        ({"conversation": []}, "individual"),
        ({"conversation_A": [], "conversation_B": []}, "pairwise"),
        ({"conversation_B": []}, "pairwise"),
        ({"prompt": "x"}, None),
    ],
)
def test_an_example_is_matched_to_the_builtin_judge_its_keys_name(example, name):
    assert judge_for(example) == name
