import json

import jsonschema
import pytest
from pydantic import ValidationError

from icrm_sgl.judges import default_judge
from icrm_sgl.judges.verdicts import CHOICES, MAX_FIELD_CHARS, choice_margin, choice_winner

INDIVIDUAL = {"intent": "i", "checklist": "c", "strengths": "s", "weaknesses": "w", "score": 7}
PAIRWISE = {
    "analysis of A": "a",
    "analysis of B": "b",
    "reason of A=B": "=",
    "reason of A>B": ">",
    "reason of B>A": "<",
    "choice": "B+",
}


def test_public_keys_are_exact_and_ordered():
    assert default_judge("individual").keys == [
        "intent",
        "checklist",
        "strengths",
        "weaknesses",
        "score",
    ]
    assert default_judge("pairwise").keys == list(PAIRWISE)


@pytest.mark.parametrize("rm_type,good", [("individual", INDIVIDUAL), ("pairwise", PAIRWISE)])
def test_valid_verdict_round_trips_with_public_keys(rm_type, good):
    verdict = default_judge(rm_type).validate(json.dumps(good))
    assert verdict.to_public() == good
    assert json.loads(verdict.to_json()) == good


@pytest.mark.parametrize(
    "change",
    [
        {"score": 0},
        {"score": 11},
        {"score": 7.5},
        {"score": "7"},
        {"extra": "x"},
        {"intent": "x" * (MAX_FIELD_CHARS + 1)},
    ],
)
def test_individual_rejects_bad_values(change):
    with pytest.raises(ValidationError):
        default_judge("individual").validate({**INDIVIDUAL, **change})


def test_missing_key_is_rejected():
    data = dict(PAIRWISE)
    del data["reason of A=B"]
    with pytest.raises(ValidationError):
        default_judge("pairwise").validate(data)


def test_choice_must_be_one_of_five():
    with pytest.raises(ValidationError):
        default_judge("pairwise").validate({**PAIRWISE, "choice": "A+++"})


def test_margins_and_winners():
    assert [choice_margin(c) for c in CHOICES] == [2, 1, 0, -1, -2]
    assert [choice_winner(c) for c in CHOICES] == ["A", "A", "tie", "B", "B"]
    verdict = default_judge("pairwise").validate(PAIRWISE)
    assert (verdict.margin, verdict.winner) == (-1, "B")


@pytest.mark.parametrize("rm_type,good", [("individual", INDIVIDUAL), ("pairwise", PAIRWISE)])
def test_json_schema_forbids_extra_keys_and_matches_model(rm_type, good):
    schema = default_judge(rm_type).json_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == default_judge(rm_type).keys
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "bonus": 1}, schema)
