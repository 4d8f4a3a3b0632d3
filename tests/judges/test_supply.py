"""The one mapping from what a consumer has to a judge's example (``judges.supply``), and
its refusals before any engine loads (no model runs here)."""

from pathlib import Path

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.judges import as_judge, make_judge
from icrm_sgl.judges.supply import (
    GET_REWARD,
    RANK,
    REWARD_FUNCTION,
    VERL,
    check_supplied,
    checked,
    one_reply,
    two_replies,
)
from tests.conftest import EXAMPLES

JUDGES = EXAMPLES / "judges"
REFERENCE = as_judge(JUDGES / "reference_correct.toml")
BEFORE = [{"role": "user", "content": "2 + 2?"}]


def rubric(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "judge.toml"
    path.write_text(body, encoding="utf-8")
    return path


INSTRUCTION_RESPONSE = """
name = "instruction_response"
reward = "good"
template = "{$instruction}\\n{$response}\\n"
[[fields]]
name = "good"
type = "bool"
"""

NO_REWARD = """
name = "notes"
template = "{$user_query}\\n{$model_output}\\n"
[[fields]]
name = "note"
type = "text"
max_tokens = 8
"""


@pytest.mark.parametrize("consumer", [RANK, GET_REWARD, REWARD_FUNCTION, VERL])
def test_a_judge_with_no_place_for_the_reply_is_refused_naming_what_is_supplied(tmp_path, consumer):
    judge = as_judge(rubric(tmp_path, INSTRUCTION_RESPONSE))
    with pytest.raises(InputError) as caught:
        check_supplied(judge, consumer)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{consumer.name} supplies ")
    assert "{$model_output}" in message and "instruction, response" in message


@pytest.mark.parametrize("consumer", [RANK, GET_REWARD, REWARD_FUNCTION, VERL])
def test_a_judge_without_a_reward_is_refused_by_every_reward_consumer(tmp_path, consumer):
    judge = as_judge(rubric(tmp_path, NO_REWARD))
    with pytest.raises(InputError, match=f"^{consumer.name} needs a reward; judge notes"):
        check_supplied(judge, consumer)


def test_judges_of_two_replies_go_where_pairs_can_be_judged():
    pairwise = as_judge("pairwise")
    for consumer in (RANK, GET_REWARD):
        check_supplied(pairwise, consumer)
    for consumer in (REWARD_FUNCTION, VERL):
        with pytest.raises(InputError, match="judges one reply at a time"):
            check_supplied(pairwise, consumer)


def test_one_reply_keeps_item_keys_but_never_lets_them_replace_the_conversation():
    chat = [*BEFORE, {"role": "assistant", "content": "4"}]
    extras = {"reference": "4", "model_output": "5", "conversation": [], "id": "x"}
    example = one_reply(chat, extras)
    assert example == {"reference": "4", "conversation": chat}
    fields = REFERENCE.example_fields(checked(REFERENCE, RANK, example, "item 1"))
    assert fields == {"user_query": "2 + 2?", "reference": "4", "model_output": "4"}


def test_a_missing_item_key_is_one_line_naming_it_and_what_the_consumer_supplies():
    example = one_reply([*BEFORE, {"role": "assistant", "content": "4"}], {"topic": "math"})
    with pytest.raises(InputError) as caught:
        checked(REFERENCE, RANK, example, "item 3")
    assert str(caught.value) == (
        "item 3: missing 'reference' (the judge's template uses {$reference}); rank "
        "supplies history, user_query, model_output and item keys (topic)"
    )


def test_two_replies_fill_conversations_or_texts_as_the_judge_reads_them():
    builtin = two_replies(as_judge("pairwise"), BEFORE, ("4", "5"), {}, "item")
    assert builtin["conversation_A"][-1]["content"] == "4"
    assert builtin["conversation_B"][-1]["content"] == "5"
    as_judge("pairwise").example_fields(builtin)
    relative = as_judge(JUDGES / "prometheus_relative.toml")
    texts = two_replies(relative, BEFORE, ("4", "5"), {"response_a": "x"}, "item")
    fields = relative.example_fields(texts)
    assert (fields["response_a"], fields["response_b"]) == ("4", "5")
    assert fields["user_query"] == "2 + 2?"


def test_a_judge_made_in_python_is_checked_the_same_way():
    from pydantic import BaseModel

    class Verdict(BaseModel):
        good: bool

    judge = make_judge(Verdict, "{$question} {$answer}", reward="good")
    with pytest.raises(InputError, match=r"no \{\$model_output\}"):
        check_supplied(judge, REWARD_FUNCTION)
