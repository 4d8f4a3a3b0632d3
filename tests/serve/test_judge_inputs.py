"""/get_reward requests mapped to a rubric judge's inputs (``supply``): labels become the
``{$reference}``, per-query fields travel by name, and every query a judge cannot read is
a 422 problem naming it (never a 500, which OpenRLHF retries). No model runs here; the
HTTP round trip is in test_serve_judge.py."""

import pytest

from icrm_sgl.judges import as_judge
from icrm_sgl.serve.payloads import RequestRejected, RewardRequest, reward_examples
from tests.conftest import EXAMPLES

REFERENCE = as_judge(EXAMPLES / "judges" / "reference_correct.toml")
QUERY = {"query": ["2 + 2? 4", "2 + 2? 5"], "prompts": ["2 + 2?"] * 2}


def rejected(body, judge=REFERENCE):
    with pytest.raises(RequestRejected) as caught:
        reward_examples(RewardRequest.model_validate(body), judge)
    return [(p.example, p.field, p.message) for p in caught.value.problems]


def test_labels_become_the_reference_and_per_query_fields_travel_by_name():
    body = {**QUERY, "labels": ["4", "4"], "topic": ["math", "sums"], "metadata": {"x": 1}}
    examples = reward_examples(RewardRequest.model_validate(body), REFERENCE)
    assert [e["reference"] for e in examples] == ["4", "4"]
    assert [e["topic"] for e in examples] == ["math", "sums"]
    assert all("metadata" not in e for e in examples)
    assert [REFERENCE.example_fields(e)["model_output"] for e in examples] == [" 4", " 5"]


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        (None, "missing 'reference'"),
        ([None, "4"], "missing 'reference'"),
        ([391, "4"], "labels[0] must be text (the judge's {$reference}), got int"),
    ],
)
def test_bad_labels_for_a_reference_judge_are_problems_naming_the_query(labels, words):
    body = {**QUERY, **({"labels": labels} if labels is not None else {})}
    problems = rejected(body)
    assert problems[0][:2] == (0, "labels")
    assert words in problems[0][2] and "\n" not in problems[0][2]
    if labels is not None:
        assert len(problems) == 1  # the second query's label is fine


def test_a_missing_reference_says_it_comes_from_labels():
    (problem,) = rejected({**QUERY, "labels": [None, "4"]})
    assert "serve /get_reward supplies" in problem[2] and "reference (from labels)" in problem[2]


def test_a_per_query_field_of_the_wrong_length_is_named(tmp_path):
    body = {**QUERY, "reference": ["4"]}
    assert rejected(body)[0][:2] == (None, "reference")


def test_a_judge_without_a_reward_is_refused_for_get_reward(tmp_path):
    rubric = tmp_path / "notes.toml"
    rubric.write_text(
        'name = "notes"\ntemplate = "{$user_query} {$model_output}"\n'
        '[[fields]]\nname = "note"\ntype = "text"\nmax_tokens = 8\n',
        encoding="utf-8",
    )
    ((example, field, message),) = rejected(QUERY, as_judge(rubric))
    assert (example, field) == (None, None)
    assert message.startswith("serve /get_reward needs a reward; judge notes names none")
