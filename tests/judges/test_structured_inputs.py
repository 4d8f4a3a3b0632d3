"""Inputs beyond flat text (``[inputs]``): a list of text rendered as a numbered list and
several whole conversations, each with its own history; checked per example, used by
shots, and as the two replies of a multi-turn pairwise judge in both orders."""

from __future__ import annotations

import json

import pytest

from icrm_sgl import ICRM
from icrm_sgl.errors import InputError
from icrm_sgl.judges import as_judge
from icrm_sgl.judging.pair_judging import judge_pair

CONSTRAINTS = '''
name = "constraints"
reward = "passes"
template = """Does the reply meet every constraint?
{$fields}
{$shots}Instruction: {$instruction}
Constraints:
{$constraints}
Reply: {$response}
JSON: """

[inputs]
instruction = "text"
constraints = "list"
response = "text"

[[fields]]
name = "passes"
type = "bool"
'''
MULTI_TURN = '''
name = "multi_turn_pair"
reward = "winner"
template = """Which assistant did better over the whole conversation?
{$fields}
Conversation A:
{$conversation_a}
Conversation B:
{$conversation_b}
JSON: """

[inputs]
conversation_a = "conversation"
conversation_b = "conversation"

[pair]
replies = ["conversation_a", "conversation_b"]
swap = { A = "B", B = "A", tie = "tie" }

[[fields]]
name = "winner"
type = "choice"
choices = ["A", "B", "tie"]
scores = [1, -1, 0]
'''
EXAMPLE = {
    "id": "french",
    "instruction": "Greet the user.",
    "constraints": ["Answer in French.", "Use at most five words."],
    "response": "Bonjour !",
}
TURNS = [{"role": "user", "content": "Hi, I need a pasta recipe."}]
PAIR = {
    "id": "pasta",
    "conversation_a": [*TURNS, {"role": "assistant", "content": "Boil pasta, add sauce."},
                       {"role": "user", "content": "Vegetarian?"},
                       {"role": "assistant", "content": "Use tomato sauce."}],
    "conversation_b": [*TURNS, {"role": "assistant", "content": "No."},
                       {"role": "user", "content": "Vegetarian?"},
                       {"role": "assistant", "content": "Ask someone else."}],
}  # fmt: skip


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def prompt(judge, example, shots=()) -> str:
    return judge.prompt(list(shots)).render(judge.example_fields(example))


def test_a_list_input_is_a_numbered_list_in_the_prompt(tmp_path):
    judge = as_judge(write(tmp_path, "c.toml", CONSTRAINTS))
    text = prompt(judge, EXAMPLE)
    assert (
        "Constraints:\n1. Answer in French.\n2. Use at most five words.\nReply: Bonjour !" in text
    )


def test_each_conversation_input_is_rendered_whole_with_its_history(tmp_path):
    judge = as_judge(write(tmp_path, "m.toml", MULTI_TURN))
    text = prompt(judge, PAIR)
    assert (
        "Conversation A:\nUser: Hi, I need a pasta recipe.\nAssistant: Boil pasta, add sauce.\n"
        "User: Vegetarian?\nAssistant: Use tomato sauce.\nConversation B:\n"
        "User: Hi, I need a pasta recipe.\nAssistant: No.\n"
    ) in text


def test_shots_render_their_list_inputs_too(tmp_path):
    shot = {**EXAMPLE, "id": "s1", "feedback": {"passes": True}}
    write(tmp_path, "shots.json", json.dumps([shot]))
    path = write(tmp_path, "c.toml", 'shots = "shots.json"\n' + CONSTRAINTS)
    judge = as_judge(path)
    text = prompt(judge, {**EXAMPLE, "constraints": ["Be polite."]}, judge.shots_pool)
    assert "### constraints\n1. Answer in French.\n2. Use at most five words.\n" in text
    assert "Constraints:\n1. Be polite.\nReply:" in text


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("constraints", "Answer in French.", "constraints must be a list of text, got str"),
        ("constraints", [], "constraints is an empty list"),
        ("constraints", ["ok", 3], "constraints item 2 is int, expected text"),
        ("instruction", ["a"], "instruction must be text, got list"),
    ],
)  # fmt: skip
def test_a_wrong_list_or_text_input_is_one_line(tmp_path, key, value, message):
    judge = as_judge(write(tmp_path, "c.toml", CONSTRAINTS))
    with pytest.raises(InputError, match="^example x: " + message) as error:
        judge.example_fields({**EXAMPLE, key: value}, "example x")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hi", "expected a non-empty list"),
        ([{"role": "user", "content": "hi"}], "must end with an assistant turn"),
        ([{"role": "user", "text": "hi"}], "turn 0 must have exactly the keys"),
    ],
)
def test_a_bad_conversation_input_is_one_line_naming_it(tmp_path, value, message):
    judge = as_judge(write(tmp_path, "m.toml", MULTI_TURN))
    with pytest.raises(InputError, match="example x: conversation_b: " + message):
        judge.example_fields({**PAIR, "conversation_b": value}, "example x")


def test_score_judges_list_inputs_and_skips_a_bad_example(run_cli, tmp_path):
    rubric = write(tmp_path, "c.toml", CONSTRAINTS)
    bad = {**EXAMPLE, "id": "bad", "constraints": []}
    src = write(tmp_path, "in.jsonl", "".join(json.dumps(e) + "\n" for e in (EXAMPLE, bad)))
    out = tmp_path / "out.jsonl"
    result = run_cli("score", src, "--judge", rubric, "-o", out)
    assert result.returncode == 2, result.stderr
    records = {r["id"]: r for r in map(json.loads, out.read_text("utf-8").splitlines())}
    assert isinstance(records["french"]["verdict"]["passes"], bool)
    assert 0 <= records["french"]["meta"]["reward"] <= 1
    assert "constraints is an empty list" in records["bad"]["error"]


def test_a_multi_turn_pairwise_rubric_judges_both_orders(local_backend, tmp_path):
    rubric = write(tmp_path, "m.toml", MULTI_TURN)
    with ICRM(judge=rubric, num_shots=0, backend=local_backend) as model:
        result = judge_pair(model, PAIR, both_orders=True)
    got = result.result()
    assert set(got["verdicts"]) == {"A/B", "B/A"} and got["from_probabilities"]
    orders = result.meta["orders"]
    ab, ba = orders["A/B"]["probabilities"], orders["B/A"]["probabilities"]
    by_hand = (ab["A"] + ab["tie"] / 2 + ba["B"] + ba["tie"] / 2) / 2
    assert got["p_a_better"] == pytest.approx(by_hand, abs=1e-5)
