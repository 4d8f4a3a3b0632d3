"""With sampling (temperature > 0) there are no probabilities: a custom judge's record
still carries ``meta.reward``, the value its verdict names (through ``scores``), on
``score``, in Python and behind ``serve``; the built-in judges keep only their expected
values, which sampling does not give."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel

from icrm_sgl import ICRM
from icrm_sgl.judges import as_judge, default_judge, make_judge
from tests.conftest import EXAMPLES

HH = EXAMPLES / "judges" / "helpful_harmless.toml"
SAMPLED = {"temperature": 0.9, "top_p": 0.95, "max_tokens": 24}
SCALE = {"good": 1.0, "meh": 0.25, "bad": -1.0}


class Rated(BaseModel):
    why: str
    rating: Literal["good", "meh", "bad"]


def rated():
    return make_judge(Rated, "{$fields}\nReply: {$response}\nJSON: ", reward="rating", scale=SCALE)


def test_a_sampled_rubric_record_carries_the_reward_its_verdict_names(run_cli, tmp_path):
    out = tmp_path / "out.jsonl"
    src = EXAMPLES / "judges" / "helpful_harmless.jsonl"
    result = run_cli(
        "score", src, "--judge", HH, "-o", out, "--num-shots", "0", "--max-tokens", "24",
        "--temperature", "0.9", "--seed", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert records
    for record in records:
        verdict, meta = record["verdict"], record["meta"]
        assert "probabilities" not in meta
        assert meta["reward"] == float(verdict["overall"])


def test_a_sampled_python_verdict_carries_the_scaled_reward(local_backend):
    judge = rated()
    with ICRM(judge=judge, num_shots=0, backend=local_backend) as model:
        results = list(model.judge_batch([{"id": "a", "response": "Glad to help!"}], **SAMPLED))
    (result,) = results
    assert result.ok, result.error
    assert "probabilities" not in result.meta
    assert result.meta["reward"] == SCALE[result.verdict["rating"]]
    assert judge.reward_value(result.verdict, result.meta) == result.meta["reward"]


def test_serve_answers_a_sampled_verdict_with_its_reward_in_meta(local_backend):
    from fastapi.testclient import TestClient

    from icrm_sgl.serve.app import create_app
    from icrm_sgl.serve.config import ServeConfig
    from icrm_sgl.serve.judges import Judges

    config = ServeConfig(gen=SAMPLED)

    def judges() -> Judges:
        return Judges.open((rated(),), backend=local_backend, num_shots=0)

    with TestClient(create_app(config, judges)) as client:
        reply = client.post("/v1/judge", json={"id": "q", "response": "Glad to help!"})
    assert reply.status_code == 200, reply.text
    record = reply.json()
    assert record["meta"]["reward"] == SCALE[record["verdict"]["rating"]]
    assert record["reward"] == record["meta"]["reward"]


def test_only_a_verdict_without_an_expected_reward_gets_the_named_one():
    judge = rated()
    verdict = {"why": "", "rating": "meh"}
    assert judge.reward_meta(verdict, {}) == {"reward": 0.25}
    assert judge.reward_meta(verdict, {"reward": 0.7}) == {}
    unrewarded = make_judge(Rated, "{$fields}\nReply: {$response}\nJSON: ")
    assert unrewarded.reward_meta(verdict, {}) == {}
    # the built-ins' meta keys are expectations, which a sampled verdict has none of
    assert as_judge("individual").reward_meta({"score": 7}, {}) == {}
    assert as_judge("individual").reward_value({"score": 7}, {}) == 7.0


def test_a_sampled_builtin_verdict_keeps_its_meta(local_backend, individual_example):
    with ICRM(rm_type="individual", num_shots=0, backend=local_backend) as model:
        result = model.judge(individual_example, **SAMPLED)
    assert "expected_score" not in result.meta and "reward" not in result.meta
    assert (
        default_judge("individual").reward_value(result.verdict, result.meta)
        == result.verdict["score"]
    )
