"""Bad rubric files and verdict models: one line naming the field, exit 2, no traceback."""

import enum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from icrm_sgl.errors import InputError
from icrm_sgl.judges import make_judge

TEMPLATE = 'template = "Reply: {$response}\\n"\n'
GOOD_FIELD = '[[fields]]\nname = "score"\ntype = "int"\nmin = 1\nmax = 5\n'


def field(**entries):
    lines = "".join(f"{k} = {v}\n" for k, v in entries.items())
    return "[[fields]]\n" + lines


#: (case, rubric text, what the one-line error must mention)
BAD_RUBRICS = [
    ("unknown type", TEMPLATE + field(name='"x"', type='"float"'), "field 'x': type: unknown type"),
    ("empty choices", TEMPLATE + field(name='"x"', type='"choice"', choices="[]"), "'x': choices"),
    (
        "duplicated choice",
        TEMPLATE + field(name='"x"', type='"choice"', choices='["a", "b", "a"]'),
        "field 'x': choice 'a' is listed twice",
    ),
    ("min > max", TEMPLATE + field(name='"x"', type='"int"', min=5, max=1), "field 'x': min 5"),
    (
        "range too wide",
        TEMPLATE + field(name='"x"', type='"int"', min=0, max=1000),
        "field 'x': 1001 values",
    ),
    ("int without max", TEMPLATE + field(name='"x"', type='"int"', min=1), "field 'x': an int"),
    ("name with a space", TEMPLATE + field(name='"my score"', type='"bool"'), "'my score'"),
    ("name starting with a digit", TEMPLATE + field(name='"1st"', type='"bool"'), "'1st'"),
    ("reserved name", TEMPLATE + field(name='"model_dump"', type='"bool"'), "'model_dump'"),
    ("keyword name", TEMPLATE + field(name='"class"', type='"bool"'), "'class'"),
    ("field twice", TEMPLATE + GOOD_FIELD + GOOD_FIELD, "field 'score': listed twice"),
    (
        "choices on an int",
        TEMPLATE + GOOD_FIELD.replace("max = 5", 'max = 5\nchoices = ["a"]'),
        "field 'score': choices applies to choice",
    ),
    (
        "max_tokens on a bool",
        TEMPLATE + field(name='"x"', type='"bool"', max_tokens=5),
        "field 'x': max_tokens applies",
    ),
    ("no fields", TEMPLATE + "fields = []\n", "fields"),
    ("no template", GOOD_FIELD, "give a template"),
    ("template and template_file", TEMPLATE + 'template_file = "t.txt"\n' + GOOD_FIELD, "not both"),
    ("unreadable template file", 'template_file = "missing.txt"\n' + GOOD_FIELD, "missing.txt"),
    ("shot-only placeholder", 'template = "{$response} {$feedback}"\n' + GOOD_FIELD, "{$feedback}"),
    (
        "placeholder no input supplies",
        'template = "{$response} {$reference}"\ninputs = ["response"]\n' + GOOD_FIELD,
        "{$reference}",
    ),
    ("template without inputs", 'template = "Judge it.{$shots}"\n' + GOOD_FIELD, "placeholder"),
    (
        "reward naming a text field",
        'reward = "why"\n' + TEMPLATE + field(name='"why"', type='"text"'),
        "reward 'why'",
    ),
    ("reward naming no field", 'reward = "total"\n' + TEMPLATE + GOOD_FIELD, "reward 'total'"),
    (
        "choice reward without scores",
        'reward = "x"\n' + TEMPLATE + field(name='"x"', type='"choice"', choices='["a", "b"]'),
        "reward 'x'",
    ),
    (
        "scores that do not match",
        TEMPLATE + field(name='"x"', type='"choice"', choices='["a", "b"]', scores="[1]"),
        "field 'x': 1 scores for 2 choices",
    ),
    ("unknown top-level key", TEMPLATE + 'rewrd = "score"\n' + GOOD_FIELD, "rewrd: unknown key"),
    ("unknown field key", TEMPLATE + GOOD_FIELD + "maximum = 3\n", "field 'score': maximum"),
    ("invalid TOML", "template = \n" + GOOD_FIELD, "invalid TOML"),
    (
        "missing shots file",
        'shots = "none.json"\n' + 'template = "{$shots}{$response}"\n' + GOOD_FIELD,
        "none.json",
    ),
]


@pytest.mark.parametrize("case,text,mention", BAD_RUBRICS, ids=[c[0] for c in BAD_RUBRICS])
def test_bad_rubric_is_one_line_and_exit_2(run_cli, tmp_path, case, text, mention):
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(text)
    (tmp_path / "t.txt").write_text("{$response}")
    example = tmp_path / "ex.json"
    example.write_text('{"response": "hi"}')
    result = run_cli("score", example, "--judge", rubric)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert mention in lines[0] and str(rubric) in lines[0]


def test_a_rubric_file_that_cannot_be_read_is_one_line(run_cli, tmp_path):
    example = tmp_path / "ex.json"
    example.write_text('{"response": "hi"}')
    result = run_cli("score", example, "--judge", tmp_path / "absent.toml")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "absent.toml" in result.stderr


class Color(enum.Enum):
    RED = 1


class Nested(BaseModel):
    inner: str


#: (case, verdict model, what the error must mention)
BAD_MODELS = [
    ("float field", type("M1", (BaseModel,), {"__annotations__": {"x": float}}), "field 'x'"),
    ("unbounded int", type("M2", (BaseModel,), {"__annotations__": {"n": int}}), "field 'n'"),
    (
        "int range too wide",
        type("M3", (BaseModel,), {"__annotations__": {"n": int}, "n": Field(ge=0, le=500)}),
        "use a smaller range, or a choice",
    ),
    ("nested model", type("M4", (BaseModel,), {"__annotations__": {"sub": Nested}}), "'sub'"),
    ("enum of ints", type("M5", (BaseModel,), {"__annotations__": {"c": Color}}), "field 'c'"),
    (
        "literal of ints",
        type("M6", (BaseModel,), {"__annotations__": {"c": Literal[1, 2]}}),
        "field 'c'",
    ),
    ("no fields", type("M7", (BaseModel,), {}), "no fields"),
    ("not a model", dict, "pydantic model class"),
]


@pytest.mark.parametrize("case,model,mention", BAD_MODELS, ids=[c[0] for c in BAD_MODELS])
def test_bad_verdict_model_is_one_input_error(case, model, mention):
    with pytest.raises(InputError) as info:
        make_judge(model, "Reply: {$response}\n")
    message = str(info.value)
    assert "\n" not in message and mention in message


def test_a_python_judge_checks_its_reward_and_template():
    model = type("Ok", (BaseModel,), {"__annotations__": {"why": str}})
    with pytest.raises(InputError, match="reward 'why': a text field"):
        make_judge(model, "Reply: {$response}\n", reward="why")
    with pytest.raises(InputError, match=r"\{\$index\}"):
        make_judge(model, "Reply: {$response} {$index}\n")
