"""Bad rubric files and verdict models: one line naming the field, exit 2, no traceback."""

import enum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from icrm_sgl.errors import InputError
from icrm_sgl.judges import as_judge, make_judge

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
        "deeply nested array",
        TEMPLATE + "x = " + "[" * 5000 + "]" * 5000 + "\n" + GOOD_FIELD,
        "invalid TOML (nested too deeply to read)",
    ),
    (
        "deeply nested inline table",
        TEMPLATE + "x = " + "{a = " * 5000 + "}" * 5000 + "\n" + GOOD_FIELD,
        "invalid TOML (nested too deeply to read)",
    ),
    (
        "scores without a reward",
        TEMPLATE + field(name='"x"', type='"choice"', choices='["a", "b"]', scores="[1, 0]"),
        "field 'x': scores only number the reward field's choices",
    ),
    (
        "scores on a field that is not the reward",
        'reward = "score"\n'
        + TEMPLATE
        + GOOD_FIELD
        + field(name='"x"', type='"choice"', choices='["a", "b"]', scores="[1, 0]"),
        "field 'x': scores only number the reward field's choices",
    ),
    (
        "a bound written as text",
        TEMPLATE + field(name='"x"', type='"int"', min='"1"', max=5),
        "field 'x': min: Input should be a valid integer",
    ),
    (
        "a bound written as a float",
        TEMPLATE + field(name='"x"', type='"int"', min=1, max=5.0),
        "field 'x': max: Input should be a valid integer",
    ),
    (
        "a score that is not a number",
        'reward = "x"\n'
        + TEMPLATE
        + field(name='"x"', type='"choice"', choices='["a", "b"]', scores="[nan, 0]"),
        "field 'x': scores.0: Input should be a finite number",
    ),
    (
        "a keyword placeholder",
        'template = "Reply: {$class}"\n' + GOOD_FIELD,
        "'class' is a Python keyword and cannot name an input",
    ),
    (
        "the program state's placeholder",
        'template = "Reply: {$s}"\n' + GOOD_FIELD,
        "'s' is the judging program's state",
    ),
    (
        "missing shots file",
        'shots = "none.json"\n' + 'template = "{$shots}{$response}"\n' + GOOD_FIELD,
        "none.json",
    ),
]

CHOICE = field(name='"w"', type='"choice"', choices='["A", "B", "tie"]', scores="[1, -1, 0]")
TEXT = field(name='"why"', type='"text"')
PAIR_TOP = 'reward = "w"\ntemplate = "{$a} {$b}"\n'
SWAP = 'swap = { A = "B", B = "A", tie = "tie" }\n'


def pair(replies='["a", "b"]', swap=SWAP):
    return f"[pair]\nreplies = {replies}\n{swap}"


def weighted(weights, normalize=""):
    return f"[reward]\nweights = {weights}\n{normalize}"


#: A combined reward, a judge of two replies and typed inputs, each wrong one way.
BAD_RUBRICS += [
    ("a weight on no field", TEMPLATE + GOOD_FIELD + weighted("{ nope = 1 }"), "'nope': no such"),
    ("a weight on text", TEMPLATE + GOOD_FIELD + TEXT + weighted("{ why = 1 }"), "'why': a text"),
    ("a nan weight", TEMPLATE + GOOD_FIELD + weighted("{ score = nan }"), "nan is not a finite"),
    ("an inf weight", TEMPLATE + GOOD_FIELD + weighted("{ score = inf }"), "inf is not a finite"),
    ("a negative weight", TEMPLATE + GOOD_FIELD + weighted("{ score = -1 }"), "-1.0 is not a"),
    ("no weights", TEMPLATE + GOOD_FIELD + weighted("{}"), "reward.weights: Dictionary should"),
    ("a weight not a number", TEMPLATE + GOOD_FIELD + weighted('{ score = "1" }'), "weights.score"),
    (
        "a weighted choice without scores",
        TEMPLATE + field(name='"w"', type='"choice"', choices='["A", "B"]') + weighted("{ w = 1 }"),
        "reward weights: 'w': a choice field needs a number for each of its choices",
    ),
    (
        "normalize a field of one value",
        TEMPLATE
        + field(name='"x"', type='"int"', min=2, max=2)
        + weighted("{ x = 1 }", "normalize = true"),
        "'x': every value is 2.0, so normalize cannot",
    ),
    (
        "normalize as text",
        TEMPLATE + GOOD_FIELD + weighted("{ score = 1 }", 'normalize = "yes"'),
        "reward.normalize: Input should be a valid boolean",
    ),
    (
        "an unknown reward key",
        TEMPLATE + GOOD_FIELD + weighted("{ score = 1 }", "sum = 1"),
        "reward.sum: unknown key",
    ),
    (
        "an inf score",
        'reward = "w"\n' + TEMPLATE + CHOICE.replace("1, -1", "inf, -1"),
        "scores.0: Input should be a finite",
    ),
    ("replies named twice", PAIR_TOP + CHOICE + pair('["a", "a"]'), "pair: replies name 'a' twice"),
    ("one reply", PAIR_TOP + CHOICE + pair('["a"]'), "pair: replies must name two inputs"),
    ("a reply no input", PAIR_TOP + CHOICE + pair('["a", "c"]'), "pair: reply 'c' is not one of"),
    (
        "a swap missing a choice",
        PAIR_TOP + CHOICE + pair(swap=SWAP.replace(', tie = "tie"', "")),
        "no reading for choice 'tie'",
    ),
    (
        "a swap onto no choice",
        PAIR_TOP + CHOICE + pair(swap=SWAP.replace('tie = "tie"', 'tie = "C"')),
        "'tie' reads as 'C', not a choice",
    ),
    (
        "a swap of no choice",
        PAIR_TOP + CHOICE + pair(swap=SWAP.replace("tie =", 'C = "C", tie =')),
        "swap: 'C' is not a choice",
    ),
    (
        "a swap not its own inverse",
        PAIR_TOP + CHOICE + pair(swap=SWAP.replace('B = "A", tie = "tie"', 'B = "tie", tie = "A"')),
        "not its own inverse",
    ),
    ("no swap", PAIR_TOP + CHOICE + '[pair]\nreplies = ["a", "b"]\n', "pair.swap: Field required"),
    (
        "a pair with an int reward",
        PAIR_TOP.replace('"w"', '"score"') + GOOD_FIELD + pair(),
        "pair: the reward must be a choice field",
    ),
    (
        "a pair with weights",
        'template = "{$a} {$b}"\n' + CHOICE + weighted("{ w = 1 }") + pair(),
        "pair: the reward must be a choice field",
    ),
    (
        "an unknown input type",
        TEMPLATE + GOOD_FIELD + '[inputs]\nresponse = "image"\n',
        "input 'response': unknown type 'image'",
    ),
    (
        "an input type not text",
        TEMPLATE + GOOD_FIELD + "[inputs]\nresponse = 1\n",
        "inputs.response: Input should be a valid string",
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


def test_keyword_and_pydantic_names_are_carried_as_the_verdicts_keys(tmp_path):
    rubric = tmp_path / "names.toml"
    rubric.write_text(
        'reward = "class"\n'
        + TEMPLATE
        + field(name='"class"', type='"choice"', choices='["a", "b"]', scores="[1, 0]")
        + field(name='"None"', type='"bool"')
        + field(name='"field_class"', type='"bool"')  # the attribute "class" would get
        + field(name='"model_dump"', type='"text"')
        + field(name='"copy"', type='"int"', min=1, max=2)
    )
    judge = as_judge(rubric)
    verdict = {"class": "a", "None": True, "field_class": False, "model_dump": "x", "copy": 2}
    assert judge.keys == list(verdict)
    assert list(judge.json_schema()["properties"]) == list(verdict)
    assert judge.public(judge.validate(verdict)) == verdict
    assert judge.reward_value(verdict, {}) == 1.0


class Graded(BaseModel):
    grade: Literal["pass", "fail"]
    stars: int = Field(ge=1, le=3)


#: (case, make_judge's arguments, what the error must mention)
BAD_ARGUMENTS = [
    ("no template", {"template": None}, "template must be text, got NoneType"),
    ("a scale that is not numbers", {"reward": "grade", "scale": {"pass": "a", "fail": 0}}, "'a'"),
    ("a scale without a reward", {"scale": {"pass": 1, "fail": 0}}, "no effect"),
    ("a scale of an int reward", {"reward": "stars", "scale": {"1": 1}}, "no effect"),
    ("a scale that is a list", {"reward": "grade", "scale": [1, 0]}, "got list"),
    ("a scale with nan", {"reward": "grade", "scale": {"pass": float("nan"), "fail": 0}}, "nan"),
    ("shots that are no path", {"shots": 5}, "shots must be a file path"),
    ("inputs as one string", {"inputs": "response"}, "inputs must be a list"),
    ("a reward that is no name", {"reward": ["grade"]}, "reward must be text"),
    ("a lone surrogate", {"template": "Reply: {$response} \ud800"}, "lone surrogate"),
    ("weights with inf", {"reward": {"weights": {"stars": float("inf")}}}, "inf is not a finite"),
    ("a reward table key", {"reward": {"weights": {"stars": 1}, "sum": 1}}, "reward.sum: unknown"),
    (
        "scales of no weighted field",
        {"reward": "stars", "scales": {"grade": {}}},
        "no reward weight",
    ),
    (
        "a weighted scale with nan",
        {
            "reward": {"weights": {"grade": 1}},
            "scales": {"grade": {"pass": float("nan"), "fail": 0}},
        },
        "scores of field 'grade': 'pass': nan is not a finite number",
    ),
    ("a pair that is a list", {"pair": ["response", "other"]}, "pair must be a table (dict)"),
    ("an input type unknown", {"inputs": {"response": "image"}}, "unknown type 'image'"),
]


@pytest.mark.parametrize("case,options,mention", BAD_ARGUMENTS, ids=[c[0] for c in BAD_ARGUMENTS])
def test_make_judge_refuses_bad_arguments_up_front(case, options, mention):
    options = {"template": "Reply: {$response}\n", **options}
    with pytest.raises(InputError) as info:
        make_judge(Graded, options.pop("template"), **options)
    message = str(info.value)
    assert "\n" not in message and mention in message


def test_a_computed_field_is_refused_pointing_at_reward_weights():
    from pydantic import computed_field

    class Total(Graded):
        @computed_field  # type: ignore[prop-decorator]
        @property
        def total(self) -> float:
            return self.stars / 3

    with pytest.raises(InputError, match=r"computed field 'total'.*reward weights") as info:
        make_judge(Total, "Reply: {$response}\n", reward="stars")
    assert "\n" not in str(info.value)


def test_a_verdict_model_with_a_lone_surrogate_is_refused():
    described = {"__annotations__": {"c": bool}, "c": Field(description="right\udc80")}
    model = type("S", (BaseModel,), described)
    with pytest.raises(InputError, match="field 'c': description: contains a lone surrogate"):
        make_judge(model, "Reply: {$response}\n")
