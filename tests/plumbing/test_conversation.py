import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.plumbing.conversation import split_conversation, validate_conversation, validate_pair

U = {"role": "user", "content": "hi"}
A = {"role": "assistant", "content": "hello"}
S = {"role": "system", "content": "be nice"}


def test_valid_multi_turn_split():
    turns = validate_conversation([S, U, A, {"role": "user", "content": "q2"}, A])
    ex = split_conversation(turns)
    assert ex.history == (S, U, A)
    assert ex.user_query == "q2"
    assert ex.response == "hello"


@pytest.mark.parametrize(
    "conversation,message",
    [
        ([], "non-empty list"),
        ("hello", "non-empty list"),
        ([U], "must end with an assistant turn"),
        ([A], "turn 0 has role 'assistant', expected 'user'"),
        ([U, U, A], "turn 1 has role 'user', expected 'assistant'"),
        ([S, A], "turn 1 has role 'assistant', expected 'user'"),
        ([S], "has no user turn"),
        ([U, {"role": "bot", "content": "x"}], "turn 1 has role 'bot'"),
        ([U, {"role": "assistant", "content": 3}], "turn 1 content is int"),
        ([U, {"role": "assistant"}], "turn 1 must have exactly the keys"),
        ([U, "text"], "turn 1 is str"),
    ],
)
def test_invalid_conversations_name_the_turn(conversation, message):
    with pytest.raises(InputError) as err:
        validate_conversation(conversation, "example 7: conversation")
    assert str(err.value).startswith("example 7: conversation: ")
    assert message in str(err.value)


def test_pair_must_share_all_but_last_turn():
    b = [U, {"role": "assistant", "content": "other"}]
    validate_pair([U, A], b)
    with pytest.raises(InputError, match="differ at turn 0"):
        validate_pair([U, A], [{"role": "user", "content": "different"}, A])
    with pytest.raises(InputError, match="has 2 turns but conversation_B has 4"):
        validate_pair([U, A], [U, A, U, A])
    with pytest.raises(InputError, match="conversation_B"):
        validate_pair([U, A], None, "example 3")
