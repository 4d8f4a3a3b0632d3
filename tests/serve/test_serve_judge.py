"""``serve --judge``: a rubric judge behind /v1/judge and /get_reward (a real server
process on the local engine)."""

from __future__ import annotations

import pytest
import requests

from icrm_sgl.judges import as_judge
from tests.conftest import EXAMPLES
from tests.serve.conftest import launch

RUBRIC = EXAMPLES / "judges" / "reference_correct.toml"


@pytest.fixture(scope="module")
def rubric_server():
    proc = launch("--judge", str(RUBRIC), "--num-shots", "0", "--max-tokens", "20")
    yield proc
    proc.stop(grace=60)


def test_judge_and_get_reward_answer_with_the_rubrics_reward(rubric_server):
    health = requests.get(rubric_server.url + "/health", timeout=30).json()
    assert health["modes"] == ["reference_correct"]
    example = {"id": "q", "user_query": "2 + 2?", "model_output": "4", "reference": "4"}
    reply = requests.post(rubric_server.url + "/v1/judge", json=example, timeout=900)
    assert reply.status_code == 200, reply.text
    record = reply.json()
    judge = as_judge(RUBRIC)
    assert judge.public(judge.validate(record["verdict"])) == record["verdict"]
    assert record["reward"] == pytest.approx(record["meta"]["probabilities"]["true"], abs=1e-5)
    body = {"query": ["What is 2 + 2? 4", "What is 2 + 2? 5"], "prompts": ["What is 2 + 2?"] * 2}
    body["labels"] = ["4", "4"]  # the references the rubric compares with
    reply = requests.post(rubric_server.url + "/get_reward", json=body, timeout=900)
    assert reply.status_code == 200, reply.text
    rewards = reply.json()["rewards"]
    assert len(rewards) == 2 and all(0.0 <= r <= 1.0 for r in rewards)


def test_an_example_without_the_rubrics_inputs_is_422_naming_the_key(rubric_server):
    body = {"user_query": "2 + 2?", "model_output": "4"}
    reply = requests.post(rubric_server.url + "/v1/judge", json=body, timeout=60)
    assert reply.status_code == 422
    (problem,) = reply.json()["problems"]
    assert problem["field"] == "reference" and "missing 'reference'" in problem["message"]


def test_lone_surrogates_are_422_naming_the_example_and_the_field_sent(rubric_server):
    good = {"user_query": "2 + 2?", "model_output": "4", "reference": "4"}
    body = [good, {**good, "reference": "4\ud800"}, {**good, "id": "\udc80"}]
    reply = requests.post(rubric_server.url + "/v1/judge", json=body, timeout=60)
    assert reply.status_code == 422, reply.text
    found = [(p["example"], p["field"]) for p in reply.json()["problems"]]
    assert found == [(1, "reference"), (2, "id")]
    assert "lone surrogate" in reply.json()["problems"][0]["message"]


@pytest.mark.parametrize("labels", [None, [None], [391]])
def test_bad_labels_for_the_rubrics_reference_are_422_naming_the_query(rubric_server, labels):
    """Missing, null or non-text labels leave a reference judge without its reference:
    422 naming query 0 and the labels, not a 500 (which OpenRLHF retries forever)."""
    body = {"query": ["What is 2 + 2? 4"], "prompts": ["What is 2 + 2?"]}
    if labels is not None:
        body["labels"] = labels
    reply = requests.post(rubric_server.url + "/get_reward", json=body, timeout=60)
    assert reply.status_code == 422, reply.text
    (problem,) = reply.json()["problems"]
    assert (problem["example"], problem["field"]) == (0, "labels")


def test_a_reward_function_sends_dataset_columns_to_the_served_rubric(rubric_server):
    """``ICRMReward(endpoint=...)`` sends each column as a per-query field: the served
    rubric gets its reference; a query without one fails alone (422 naming it)."""
    from icrm_sgl.integrations.reward import ICRMReward

    with ICRMReward(endpoint=rubric_server.url + "/get_reward", timeout=900) as served:
        rewards = served(["What is 2 + 2?"] * 2, [" 4", " 5"], reference=["4", None])
    assert isinstance(rewards[0], float) and 0.0 <= rewards[0] <= 1.0
    assert rewards[1] is None
