"""Choices holding a quote, a backslash or a newline: the program selects among their
JSON spellings, the verdict holds the choice itself, probabilities and ``scores`` are
keyed by it."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel

from icrm_sgl import ICRM
from icrm_sgl.errors import InputError
from icrm_sgl.judges import as_judge, make_judge

ODD = ('say "hi"', "a\\b", "two\nlines")
SCALE = dict(zip(ODD, (1.0, 0.5, 0.0), strict=True))
TEMPLATE = "{$fields}\nReply: {$response}\nJSON: "


class Odd(BaseModel):
    tone: Literal['say "hi"', "a\\b", "two\nlines"]


def rubric(tmp_path):
    path = tmp_path / "odd.toml"
    path.write_text(
        'reward = "tone"\ntemplate = "{$fields}\\nReply: {$response}\\nJSON: "\n'
        '[[fields]]\nname = "why"\ntype = "text"\nmax_tokens = 8\n'
        '[[fields]]\nname = "tone"\ntype = "choice"\n'
        f"choices = {json.dumps(list(ODD))}\nscores = [1, 0.5, 0]\n"
    )
    return path


def test_a_reward_scale_is_keyed_by_the_choices_themselves():
    judge = make_judge(Odd, TEMPLATE, reward="tone", scale=SCALE)
    spec = judge.field_named("tone")
    assert spec.texts == ODD
    assert spec.values == ('say \\"hi\\"', "a\\\\b", "two\\nlines")  # the JSON spelling
    assert judge.describe() == '- "tone" (say \\"hi\\" / a\\\\b / two\\nlines)'  # one line
    assert judge.reward_value({"tone": "a\\b"}, {}) == 0.5


def test_a_scale_missing_a_choice_names_it_in_one_line():
    escaped = {'say \\"hi\\"': 1.0, "a\\\\b": 0.5, "two\\nlines": 0.0}
    with pytest.raises(InputError) as info:
        make_judge(Odd, TEMPLATE, reward="tone", scale=escaped)
    message = str(info.value)
    assert "\n" not in message and "no number for choice 'say \"hi\"'" in message


def test_odd_choices_are_selected_and_keyed_by_their_text(local_backend, tmp_path):
    judge = as_judge(rubric(tmp_path))
    with ICRM(judge=judge, num_shots=0, backend=local_backend) as model:
        (greedy,) = model.judge_batch([{"id": "g", "response": "Hi."}], max_tokens=16)
        (sampled,) = model.judge_batch(
            [{"id": "s", "response": "Hi."}], max_tokens=16, temperature=0.9
        )
    for result in (greedy, sampled):
        assert result.ok, result.error
        assert result.verdict["tone"] in ODD
    probs = greedy.meta["probabilities"]
    assert set(probs) == set(ODD) and sum(probs.values()) == pytest.approx(1, abs=1e-4)
    expected = sum(SCALE[c] * p for c, p in probs.items())
    assert greedy.meta["reward"] == pytest.approx(expected, abs=1e-5)
    assert sampled.meta["reward"] == SCALE[sampled.verdict["tone"]]


class Long(BaseModel):
    summary: Literal[
        "the reply is correct, complete and polite in every single respect",
        "the reply is wrong, incomplete or rude in at least one respect",
    ]


def test_a_sampled_choice_longer_than_a_few_tokens_is_written_whole(local_backend):
    judge = make_judge(Long, TEMPLATE)
    with ICRM(judge=judge, num_shots=0, backend=local_backend) as model:
        (result,) = model.judge_batch(
            [{"id": "a", "response": "Hi."}], max_tokens=16, temperature=0.9
        )
    assert result.ok, result.error
    assert judge.public(judge.validate(result.verdict)) == result.verdict
