"""Request bodies: which example and which field a problem is about (no server needed)."""

import pytest

from icrm_sgl.judges import as_judge, default_judge
from icrm_sgl.serve.payloads import (
    RequestRejected,
    RewardRequest,
    parse_examples,
    reward_examples,
)
from tests.conftest import EXAMPLES

INDIVIDUAL, PAIRWISE = default_judge("individual"), default_judge("pairwise")
BOTH = (INDIVIDUAL, PAIRWISE)
TURNS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
RUBRIC = as_judge(EXAMPLES / "judges" / "reference_correct.toml")


def problems(data, modes=BOTH):
    with pytest.raises(RequestRejected) as info:
        parse_examples(data, modes)
    return [(p.example, p.field) for p in info.value.problems]


def test_single_and_list_bodies_keep_ids_and_modes():
    parsed = parse_examples({"id": 5, "conversation": TURNS}, BOTH)
    assert parsed.single and parsed.ids == ["5"] and parsed.rm_types == ["individual"]
    pair = {"conversation_A": TURNS, "conversation_B": TURNS}
    parsed = parse_examples([pair, {"conversation": TURNS}], BOTH)
    assert not parsed.single and parsed.ids == ["0", "1"]
    assert parsed.rm_types == ["pairwise", "individual"]


def test_every_bad_example_is_named_with_its_field():
    body = [
        {"conversation": TURNS},
        {"conversation": TURNS, "label": 1},
        {"conversation_A": TURNS},
        "text",
        {"conversation": [*TURNS, {"role": "user", "content": "and?"}]},
    ]
    assert problems(body) == [
        (1, "label"),
        (2, "conversation_B"),
        (3, None),
        (4, "conversation"),
    ]


def test_a_mode_the_server_does_not_serve_is_refused():
    assert problems({"conversation": TURNS}, (PAIRWISE,)) == [(0, None)]


def test_empty_or_scalar_bodies_are_refused():
    assert problems([]) == [(None, None)]
    assert problems(3) == [(None, None)]


def test_reward_queries_are_split_after_their_prompt():
    request = RewardRequest(query=["Q: hi A: hello"], prompts=["Q: hi A:"])
    (example,) = reward_examples(request, INDIVIDUAL)
    assert example["conversation"] == [
        {"role": "user", "content": "Q: hi A:"},
        {"role": "assistant", "content": " hello"},
    ]


def test_pairwise_rewards_compare_with_the_label():
    request = RewardRequest(query=["Q hello"], prompts=["Q"], labels=["hi there"])
    (example,) = reward_examples(request, PAIRWISE)
    assert example["conversation_A"][1]["content"] == " hello"
    assert example["conversation_B"][1]["content"] == "hi there"


def test_reward_requests_with_mismatched_lists_name_the_field():
    for request, judge, field in [
        (RewardRequest(query=["a"]), INDIVIDUAL, "prompts"),
        (RewardRequest(query=["a", "b"], prompts=["a"]), INDIVIDUAL, "prompts"),
        (RewardRequest(query=["xa"], prompts=["a"]), INDIVIDUAL, "query"),
        (RewardRequest(query=["ab"], prompts=["a"]), PAIRWISE, "labels"),
    ]:
        with pytest.raises(RequestRejected) as info:
            reward_examples(request, judge)
        assert info.value.problems[0].field == field


def test_a_rubric_examples_problem_names_the_field_it_sent():

    good = {"user_query": "2 + 2?", "model_output": "4", "reference": "4"}
    body = [
        good,
        {**good, "reference": 4},
        {**good, "reference": "4\ud800"},
        {"conversation": TURNS, "reference": "\udfff"},
        {"user_query": "2 + 2?", "model_output": "4"},
    ]
    assert problems(body, (RUBRIC,)) == [(i, "reference") for i in (1, 2, 3, 4)]


def test_an_id_that_is_not_valid_unicode_is_refused_for_every_judge():
    for example, modes in [
        ({"id": "a\ud800", "conversation": TURNS}, BOTH),
        ({"id": "\ud800", "user_query": "q", "model_output": "a", "reference": "r"}, (RUBRIC,)),
    ]:
        assert problems([example], modes) == [(0, "id")]
