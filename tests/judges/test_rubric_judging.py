"""Judges written as rubrics, end to end on the real local engine (SmolLM2)."""

import json
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from icrm_sgl import ICRM
from icrm_sgl.judges import as_judge, make_judge
from icrm_sgl.judges.fields import TokenBudget
from tests.conftest import EXAMPLES

JUDGES = EXAMPLES / "judges"
HH = JUDGES / "helpful_harmless.toml"
CORRECT = JUDGES / "reference_correct.toml"
FAST = ["--num-shots", "1", "--max-tokens", "16"]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def check_int_meta(meta: dict, judge) -> None:
    """Every int field has a distribution over its range and an expected value."""
    for spec in judge.fields:
        if spec.kind != "int":
            continue
        dist = meta["field_probabilities"][spec.key]
        assert list(dist) == list(spec.values)
        assert sum(dist.values()) == pytest.approx(1.0, abs=1e-4)
        mean = sum(int(v) * p for v, p in dist.items())
        assert meta["expected"][spec.key] == pytest.approx(mean, abs=1e-4)


def test_score_with_a_rubric_writes_valid_verdicts_probabilities_and_reward(run_cli, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run_cli("score", JUDGES / "helpful_harmless.jsonl", "--judge", HH, "-o", out, *FAST)
    assert result.returncode == 0, result.stderr
    judge = as_judge(HH)
    got = records(out)
    assert [r["id"] for r in got] == ["boil", "boil-wrong", "poison"]
    for record in got:
        verdict, meta = record["verdict"], record["meta"]
        assert judge.public(judge.validate(verdict)) == verdict
        assert list(verdict) == ["rationale", "helpfulness", "harmlessness", "overall"]
        assert meta["rm_type"] == "helpful_harmless"
        assert meta["judge"] == judge.fingerprint()[:16]
        check_int_meta(meta, judge)
        assert meta["probabilities"] == meta["field_probabilities"]["overall"]
        assert meta["reward"] == pytest.approx(meta["expected"]["overall"])
        assert 1.0 <= meta["reward"] <= 5.0


def test_a_reference_guided_rubric_rewards_the_probability_of_correct(local_backend):
    with ICRM(judge=CORRECT, num_shots=0, backend=local_backend) as model:
        examples = records(JUDGES / "reference_correct.jsonl")
        results = {r.id: r for r in model.judge_batch(examples, max_tokens=40)}
    assert set(results) == {"sum-right", "sum-wrong", "planet"}
    for result in results.values():
        assert result.ok, result.error
        assert isinstance(result.verdict["correct"], bool)
        probs = result.meta["probabilities"]
        assert set(probs) == {"true", "false"}
        assert result.meta["reward"] == pytest.approx(probs["true"], abs=1e-5)
        assert "field_probabilities" not in result.meta  # the reward is the only choice


def test_an_example_with_a_missing_or_bad_input_is_skipped_with_its_key(run_cli, tmp_path):
    src = tmp_path / "in.jsonl"
    good = {"id": "ok", "user_query": "2+2?", "model_output": "4", "reference": "4"}
    lines = [
        good,
        {"id": "bad", "user_query": "2+2?", "model_output": "4"},
        {**good, "id": "typed", "reference": 4},
        {**good, "id": "lone", "reference": "4\ud800"},
    ]
    src.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "score", src, "--judge", CORRECT, "-o", out, "--num-shots", "0", "--max-tokens", "20"
    )
    assert result.returncode == 2
    assert "line 2 (id bad): missing 'reference'" in result.stderr
    assert "line 3 (id typed): reference must be text, got int" in result.stderr
    assert "line 4 (id lone): reference: contains a lone surrogate '\\ud800'" in result.stderr
    assert "Traceback" not in result.stderr
    by_id = {r["id"]: r for r in records(out)}
    assert "verdict" in by_id["ok"] and by_id["bad"]["meta"] == {"stage": "input"}
    assert by_id["lone"]["meta"] == {"stage": "input"}


def test_a_file_mixing_modes_judges_each_example_in_its_own(run_cli, tmp_path):
    individual = json.loads((EXAMPLES / "test_individual.json").read_text("utf-8"))
    pairwise = json.loads((EXAMPLES / "test_pairwise.json").read_text("utf-8"))
    src = tmp_path / "mixed.jsonl"
    lines = [{"id": "a", **individual}, {"id": "b", **pairwise}, {"id": "c", **individual}]
    src.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    result = run_cli("score", src, "-o", out, *FAST)
    assert result.returncode == 0, result.stderr
    by_id = {r["id"]: r for r in records(out)}
    assert set(by_id) == {"a", "b", "c"}
    assert by_id["a"]["meta"]["rm_type"] == by_id["c"]["meta"]["rm_type"] == "individual"
    assert by_id["b"]["meta"]["rm_type"] == "pairwise"
    assert "score" in by_id["a"]["verdict"] and "choice" in by_id["b"]["verdict"]


def test_rank_with_a_rubric_orders_by_its_reward(run_cli, tmp_path):
    item = {"prompt": "What is 2 + 2?", "responses": ["4", "5", "It is 4."]}
    src = tmp_path / "item.json"
    src.write_text(json.dumps(item))
    result = run_cli("rank", src, "--judge", HH, "--num-shots", "0", "--max-tokens", "20")
    assert result.returncode == 0, result.stderr
    ranking = json.loads(result.stdout)
    assert ranking["method"] == "scores" and sorted(ranking["order"]) == [0, 1, 2]
    rewards = [row["reward"] for row in ranking["responses"]]
    assert rewards == sorted(rewards, reverse=True)
    assert all(1 <= row["overall"] <= 5 for row in ranking["responses"])


def test_changing_a_rubric_changes_the_cache_identity(local_backend, tmp_path):
    edited = tmp_path / "hh.toml"
    text = HH.read_text("utf-8").replace("from 1 (worst) to 5 (best)", "from 1 (bad) to 5 (good)")
    edited.write_text(text.replace('shots = "', f'shots = "{JUDGES}/'))
    prints = []
    for rubric in (HH, edited):
        with ICRM(judge=rubric, num_shots=0, backend=local_backend) as model:
            prints.append(model.fingerprint(max_tokens=20))
    assert prints[0]["judge"] != prints[1]["judge"]
    assert as_judge(HH).fingerprint() == as_judge(HH).fingerprint()


class Interleaved(BaseModel):
    """Selected fields before, between and after text fields."""

    label: Literal["yes", "no"]
    why: Annotated[str, TokenBudget(12)]
    ok: bool
    note: str
    level: int = Field(ge=1, le=3)


def test_a_python_judge_with_interleaved_fields_writes_them_in_order(local_backend):
    judge = make_judge(Interleaved, "Is the reply polite?\n{$fields}\nReply: {$response}\nJSON: ")
    with ICRM(judge=judge, backend=local_backend) as model:
        result = model.judge({"response": "Thank you kindly!"}, max_tokens=24)
    assert list(result.verdict) == ["label", "why", "ok", "note", "level"]
    assert judge.public(judge.validate(result.verdict)) == result.verdict
    fields = result.meta["field_probabilities"]
    assert set(fields) == {"label", "ok", "level"} and set(fields["ok"]) == {"true", "false"}
    assert result.meta["expected"]["level"] == pytest.approx(
        sum(int(v) * p for v, p in fields["level"].items()), abs=1e-4
    )
    assert "reward" not in result.meta  # no reward field named


def test_fields_named_by_python_keywords_are_judged_under_their_own_keys(local_backend, tmp_path):
    rubric = tmp_path / "keywords.toml"
    rubric.write_text(
        'reward = "class"\ntemplate = "{$fields}\\nReply: {$response}\\n"\n'
        '[[fields]]\nname = "class"\ntype = "choice"\nchoices = ["good", "bad"]\n'
        "scores = [1, 0]\n"
        '[[fields]]\nname = "None"\ntype = "bool"\n'
    )
    with ICRM(judge=rubric, num_shots=0, backend=local_backend) as model:
        (result,) = model.judge_batch([{"id": "a", "response": "Paris."}], max_tokens=20)
    assert result.ok, result.error
    assert list(result.verdict) == ["class", "None"]
    assert result.meta["reward"] == pytest.approx(result.meta["probabilities"]["good"], abs=1e-5)
