"""A judging program's own names never meet a judge's field or input names.

The names are collected from the program itself: the variables a run leaves (its
``var_scope``, every ``gen`` and ``select``, in both layouts), its parameters and
``write_judgement``'s. Each is then a field name and, where an input may have it, an input
name of a judge that judges one example end to end on the real local engine.
"""

from __future__ import annotations

import inspect
import json
import keyword
import re
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, create_model

from icrm_sgl import ICRM
from icrm_sgl.judges import as_judge, make_judge
from icrm_sgl.judges.fields import TokenBudget, is_attribute
from icrm_sgl.judging.program_config import program_config
from icrm_sgl.programs.judge import (
    LAYOUTS,
    build_program,
    field_var,
    read_verdict,
    verdict_accounting,
    write_judgement,
)

#: Names the program used before they were namespaced (``verdict`` is MT-Bench's own name
#: for its choice field).
EARLIER = ("verdict", "_body", "_body1", "body", "config", "args")
Short = Annotated[str, TokenBudget(4)]


class Probe(BaseModel):
    """Two runs of text fields around a choice: bodies at two positions (one request)."""

    first: Short
    pick: Literal["yes", "no"]
    second: Short
    third: Short


def run_program(judge, backend, layout: str, example: dict[str, str], **gen: Any):
    config = program_config(judge, num_shots=0, field_tokens=4, layout=layout)
    program = build_program(config)
    (state,) = program.run_batch([example], backend=backend, **gen)
    return config, program, state


@pytest.fixture(scope="module")
def program_names(local_backend) -> list[str]:
    """Every name a judging program uses, read from runs of it (greedy and sampled)."""
    probe = make_judge(Probe, "{$fields}\nReply: {$response}\nJSON: ")
    names = set(EARLIER) | set(inspect.signature(write_judgement).parameters)
    for layout in LAYOUTS:
        for gen in ({"temperature": 0}, {"temperature": 0.7}):
            _, program, state = run_program(
                probe, local_backend, layout, {"response": "Hi."}, **gen
            )
            assert state.error() is None
            executor = state.stream_executor
            names |= set(executor.variables) | set(executor.meta_info)
            names |= set(inspect.signature(program.func).parameters)
    assert any("verdict" in name for name in names)  # the program's own scope is there
    return sorted(names)


def allowed_input(name: str) -> bool:
    """Whether a template may use ``{$name}`` as an input (rubric.py refuses the rest)."""
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)) and not (
        keyword.iskeyword(name) or name == "s"
    )


def named_judge(name: str):
    """A judge with a choice field called ``name`` (its reward) between two text fields,
    reading an input called ``name`` where an input may be called that."""
    plain = name.isidentifier() and not name.startswith("_") and is_attribute(name)
    choice = (Literal["yes", "no"], Field(alias=None if plain else name))
    fields = {"before": (Short, ...), name if plain else "value": choice, "after": (Short, ...)}
    source = name if allowed_input(name) else "response"
    judge = make_judge(
        create_model("Named", **fields),
        "{$fields}\nReply: {$" + source + "}\nJSON: ",
        reward=name,
        scale={"yes": 1.0, "no": 0.0},
    )
    return judge, {source: "Paris is the capital of France."}


def check_result(judge, name: str, verdict: dict, meta: dict) -> None:
    assert list(verdict) == ["before", name, "after"]
    assert judge.public(judge.validate(verdict)) == verdict
    probs = meta["probabilities"]
    assert set(probs) == {"yes", "no"} and sum(probs.values()) == pytest.approx(1, abs=1e-4)
    assert meta["reward"] == pytest.approx(probs["yes"], abs=1e-5)
    assert set(meta["truncated"]) <= {"before", "after"}


def test_all_the_program_names_at_once_are_one_judges_fields_and_inputs(
    program_names, local_backend
):
    """Every name as a choice field of one judge, between two text fields, and every name
    an input may have as an input of its template (the default run's sibling of the next
    test, which judges each name on its own)."""
    fields: dict[str, Any] = {"opening": (Short, ...)}
    for i, name in enumerate(program_names):
        plain = name.isidentifier() and not name.startswith("_") and is_attribute(name)
        key = name if plain and name not in ("opening", "closing") else f"value_{i}"
        fields[key] = (Literal["yes", "no"], Field(alias=None if key == name else name))
    fields["closing"] = (Short, ...)
    inputs = [name for name in program_names if allowed_input(name)]
    template = "{$fields}\n" + "".join(f"{name}: {{${name}}}\n" for name in inputs) + "JSON: "
    judge = make_judge(
        create_model("AllNames", **fields),
        template,
        reward=program_names[0],
        scale={"yes": 1.0, "no": 0.0},
    )
    example = {name: f"text {i}" for i, name in enumerate(inputs)}
    with ICRM(judge=judge, num_shots=0, backend=local_backend) as model:
        (result,) = model.judge_batch([{"id": "a", **example}], max_tokens=4)
    assert result.ok, result.error
    assert list(result.verdict) == ["opening", *program_names, "closing"]
    assert judge.public(judge.validate(result.verdict)) == result.verdict
    distributions = result.meta["field_probabilities"]
    assert set(distributions) == set(program_names)
    for name in program_names:
        dist = distributions[name]
        assert set(dist) == {"yes", "no"} and sum(dist.values()) == pytest.approx(1, abs=1e-4)
    yes = distributions[program_names[0]]["yes"]
    assert result.meta["reward"] == pytest.approx(yes, abs=1e-5)


@pytest.mark.slow  # one judge per name (~80 runs); the test above has them all in one
def test_every_name_the_program_uses_works_as_a_field_and_an_input(program_names, local_backend):
    failed = {}
    for name in program_names:
        try:
            judge, example = named_judge(name)
            with ICRM(judge=judge, num_shots=0, backend=local_backend) as model:
                (result,) = model.judge_batch([{"id": "a", **example}], max_tokens=8)
            assert result.ok, result.error
            check_result(judge, name, result.verdict, result.meta)
            config, _, state = run_program(judge, local_backend, "one_request", example)
            check_result(
                judge, name, read_verdict(state, config), verdict_accounting(state, config)
            )
        except Exception as exc:  # every name's outcome, not only the first failure's
            failed[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
    assert not failed, failed


def test_a_rubric_field_called_verdict_is_scored(run_cli, tmp_path):
    rubric = tmp_path / "mt_bench.toml"
    rubric.write_text(
        'reward = "verdict"\ntemplate = "{$fields}\\nA: {$answer_a}\\nB: {$answer_b}\\n"\n'
        '[[fields]]\nname = "explanation"\ntype = "text"\nmax_tokens = 8\n'
        '[[fields]]\nname = "verdict"\ntype = "choice"\nchoices = ["A", "B", "tie"]\n'
        "scores = [1, -1, 0]\n"
    )
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "q1", "answer_a": "4", "answer_b": "5"}\n')
    out = tmp_path / "out.jsonl"
    result = run_cli("score", src, "--judge", rubric, "-o", out, "--max-tokens", "16")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (record,) = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert record["verdict"]["verdict"] in ("A", "B", "tie")
    probs = record["meta"]["probabilities"]
    assert record["meta"]["reward"] == pytest.approx(probs["A"] - probs["B"], abs=1e-5)


class OddKeys(BaseModel):
    """Keys that are no identifiers, that read alike once reduced to one, and attributes
    that are other fields' keys."""

    spaced: str = Field(alias="reason of A=B")
    other: str = Field(alias="reason of A>B")
    quoted: Literal["x", "y"] = Field(alias='say "hi" \\ bye')
    a: Literal["p", "q"] = Field(alias="b")
    b: bool = Field(alias="a")
    accent: int = Field(alias="évaluation", ge=1, le=2)
    private: Literal["m", "n"] = Field(alias="_private")
    digit: bool = Field(alias="1st")


def test_every_key_pydantic_and_json_accept_is_judged_under_that_key(local_backend):
    judge = make_judge(OddKeys, "{$fields}\nReply: {$response}\nJSON: ", reward="a")
    keys = list(OddKeys.model_json_schema(by_alias=True)["properties"])
    assert judge.keys == keys
    assert len({field_var(k) for k in keys}) == len(keys)
    with ICRM(judge=judge, num_shots=0, backend=local_backend) as model:
        (result,) = model.judge_batch([{"id": "a", "response": "Hi."}], max_tokens=16)
    assert result.ok, result.error
    assert list(result.verdict) == keys
    fields = result.meta["field_probabilities"]
    assert set(fields["b"]) == {"p", "q"} and set(fields["a"]) == {"true", "false"}
    assert set(fields['say "hi" \\ bye']) == {"x", "y"}
    assert result.meta["reward"] == pytest.approx(fields["a"]["true"], abs=1e-5)


def test_the_builtin_judges_fields_have_a_variable_each():
    for name in ("individual", "pairwise"):
        keys = as_judge(name).keys
        assert len({field_var(k) for k in keys}) == len(keys), name
