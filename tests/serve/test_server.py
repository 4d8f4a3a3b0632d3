"""Every endpoint of a real server process, through a real HTTP client."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import requests

from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES
from tests.serve.conftest import API_KEY

INDIVIDUAL = json.loads((EXAMPLES / "test_individual.json").read_text())
PAIRWISE = json.loads((EXAMPLES / "test_pairwise.json").read_text())


def post(server, path, body, headers, **kw):
    return requests.post(server.url + path, json=body, headers=headers, timeout=900, **kw)


def test_health_is_open_and_names_the_engine(server):
    reply = requests.get(server.url + "/health", timeout=30)
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok"
    assert body["engine"] == "local" and body["modes"] == ["individual", "pairwise"]
    assert body["queue_depth"] == 0


def test_judge_one_individual_example_returns_a_verdict_with_meta_and_reward(server, auth):
    reply = post(server, "/v1/judge", {"id": "x1", **INDIVIDUAL}, auth)
    assert reply.status_code == 200, reply.text
    record = reply.json()
    assert record["id"] == "x1"
    assert list(record["verdict"]) == default_judge("individual").keys
    default_judge("individual").validate(record["verdict"])
    assert record["meta"]["engine"] == "local" and record["meta"]["prompt_tokens"] > 0
    probabilities = record["meta"]["probabilities"]
    expected = sum(int(k) * p for k, p in probabilities.items()) / sum(probabilities.values())
    assert abs(record["reward"] - expected) < 1e-6


def test_judge_a_list_mixes_modes_and_keeps_order_and_ids(server, auth):
    body = [PAIRWISE, {"id": "ind", **INDIVIDUAL}]
    reply = post(server, "/v1/judge", body, auth)
    assert reply.status_code == 200, reply.text
    first, second = reply.json()
    assert first["id"] == "0" and second["id"] == "ind"
    default_judge("pairwise").validate(first["verdict"])
    default_judge("individual").validate(second["verdict"])
    assert -2.0 <= first["reward"] <= 2.0


def test_get_reward_speaks_openrlhf(server, auth):
    prompts = ["What is the capital of France?", "Name a prime number."]
    body = {
        "query": [prompts[0] + "Paris.", prompts[1] + "Nine."],
        "prompts": prompts,
        "labels": ["", ""],
    }
    reply = post(server, "/get_reward", body, auth)
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert len(result["rewards"]) == 2 and result["scores"] == result["rewards"]
    assert all(1.0 <= r <= 10.0 for r in result["rewards"])
    assert result["extra_logs"]["icrm_failed"] == [0.0, 0.0]


def test_get_reward_without_prompts_is_422_naming_the_field(server, auth):
    reply = post(server, "/get_reward", {"query": ["hello"]}, auth)
    assert reply.status_code == 422
    assert [p["field"] for p in reply.json()["problems"]] == ["prompts"]
    reply = post(server, "/get_reward", {"query": ["ab", 3], "prompts": ["a", "b"]}, auth)
    assert reply.status_code == 422
    assert reply.json()["problems"][0]["field"] == "query.1"


def test_invalid_examples_are_422_naming_example_and_field(server, auth):
    bad_role = {"conversation": [{"role": "robot", "content": "hi"}]}
    wrong_order = {"conversation": [{"role": "assistant", "content": "hi"}]}
    reply = post(server, "/v1/judge", [INDIVIDUAL, bad_role, wrong_order], auth)
    assert reply.status_code == 422
    problems = reply.json()["problems"]
    assert [(p["example"], p["field"]) for p in problems] == [
        (1, "conversation.0.role"),
        (2, "conversation"),
    ]
    assert "example 2" in problems[1]["message"] and "turn 0" in problems[1]["message"]
    mismatch = {**PAIRWISE, "conversation_B": PAIRWISE["conversation_B"][1:]}
    reply = post(server, "/v1/judge", mismatch, auth)
    assert reply.status_code == 422
    assert reply.json()["problems"][0]["example"] == 0
    reply = requests.post(server.url + "/v1/judge", data=b"{oops", headers=auth, timeout=30)
    assert reply.status_code == 422 and "not valid JSON" in reply.json()["problems"][0]["message"]


def test_body_over_the_limit_is_413(server, auth):
    huge = {
        "conversation": [{"role": "user", "content": "x" * 9000}, INDIVIDUAL["conversation"][1]]
    }
    reply = post(server, "/v1/judge", huge, auth)
    assert reply.status_code == 413
    more_than_the_queue = [INDIVIDUAL] * 4  # the queue holds 3
    assert post(server, "/v1/judge", more_than_the_queue, auth).status_code == 413


def test_missing_or_wrong_key_is_401_and_the_key_is_never_logged(server, auth):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": API_KEY}):
        reply = post(server, "/v1/judge", INDIVIDUAL, headers)
        assert reply.status_code == 401
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(server.url + "/metrics", timeout=30).status_code == 401
    assert post(server, "/get_reward", {"query": []}, {}).status_code == 401
    with open(server.log_path, encoding="utf-8") as log:
        assert API_KEY not in log.read()


def test_a_full_queue_is_429_with_retry_after(server, auth):
    # Three examples: one goes into the engine, two wait; a short deadline ends the
    # request soon after (504), and its waiting examples are dropped unjudged.
    filler = {**auth, "X-ICRM-Deadline": "10"}
    slow = threading.Thread(target=post, args=(server, "/v1/judge", [INDIVIDUAL] * 3, filler))
    slow.start()
    try:
        _wait_for_queue(server, depth=2)
        reply = post(server, "/v1/judge", [INDIVIDUAL] * 2, auth)
        assert reply.status_code == 429
        assert int(reply.headers["Retry-After"]) >= 1
        assert "queue full" in reply.json()["error"]
    finally:
        slow.join(timeout=900)


def test_deadline_passed_is_504(server, auth):
    headers = {**auth, "X-ICRM-Deadline": "0.001"}
    reply = post(server, "/v1/judge", INDIVIDUAL, headers)
    assert reply.status_code == 504
    assert "deadline" in reply.json()["error"]


def test_a_client_leaving_mid_request_does_not_break_the_server(server, auth):
    target = urlparse(server.url)
    body = json.dumps(INDIVIDUAL).encode()
    head = (
        f"POST /v1/judge HTTP/1.1\r\nHost: {target.netloc}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((target.hostname, target.port), timeout=30) as sock:
        sock.sendall(head + body)
        time.sleep(0.3)  # queued or in the engine, then the client is gone
    reply = post(server, "/v1/judge", INDIVIDUAL, auth)
    assert reply.status_code == 200, reply.text
    default_judge("individual").validate(reply.json()["verdict"])


def test_metrics_count_verdicts_failures_latency_cache_and_queue(server, auth):
    assert post(server, "/v1/judge", INDIVIDUAL, auth).status_code == 200
    post(server, "/v1/judge", {"conversation": []}, auth)
    text = requests.get(server.url + "/metrics", headers=auth, timeout=30).text
    samples = _samples(text)
    assert samples['icrm_verdicts_total{rm_type="individual"}'] >= 1
    assert samples['icrm_failures_total{kind="input"}'] >= 1
    assert samples['icrm_http_requests_total{code="200",endpoint="/v1/judge"}'] >= 1
    assert samples['icrm_request_latency_seconds_count{endpoint="/v1/judge"}'] >= 1
    assert 'icrm_request_latency_seconds_bucket{endpoint="/v1/judge",le="+Inf"}' in samples
    assert 0.0 < samples["icrm_cached_token_share"] <= 1.0  # the shots prefix is reused
    assert samples["icrm_queue_depth"] == 0
    assert "# TYPE icrm_request_latency_seconds histogram" in text  # scrapers aggregate these


def _samples(text: str) -> dict[str, float]:
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


def _wait_for_queue(server, depth: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(server.url + "/health", timeout=30).json()["queue_depth"] >= depth:
            return
        time.sleep(0.02)
    raise AssertionError(f"queue never reached {depth}")


def test_get_reward_with_a_lone_surrogate_is_422_before_queueing(server, auth):
    prompt = "Say hi."
    body = json.dumps({"query": [prompt + "Hi \ud800!"], "prompts": [prompt], "labels": [""]})
    before = _samples(requests.get(server.url + "/metrics", headers=auth, timeout=30).text)
    reply = requests.post(
        server.url + "/get_reward",
        data=body.encode(),  # json.dumps escapes the surrogate as \\ud800, as JSON allows
        headers={**auth, "Content-Type": "application/json"},
        timeout=60,
    )
    assert reply.status_code == 422, reply.text
    (problem,) = reply.json()["problems"]
    assert problem["field"] == "query" and "lone surrogate" in problem["message"]
    after = _samples(requests.get(server.url + "/metrics", headers=auth, timeout=30).text)
    key = 'icrm_verdicts_total{rm_type="individual"}'
    assert after.get(key, 0) == before.get(key, 0)  # nothing reached the engine


def test_a_deeply_nested_body_is_a_json_422(server, auth):
    body = b"[" * 100_000 + b"]" * 100_000
    reply = requests.post(server.url + "/v1/judge", data=body, headers=auth, timeout=60)
    assert reply.status_code in (413, 422), reply.text  # refused either way, as JSON
    assert "error" in reply.json()
    small = b"[" * 4000 + b"]" * 4000  # under the body limit: the parser's depth decides
    reply = requests.post(server.url + "/v1/judge", data=small, headers=auth, timeout=60)
    assert reply.status_code == 422, reply.text
    assert "too deeply" in reply.json()["problems"][0]["message"]


def test_a_client_hanging_up_mid_body_counts_as_a_disconnect(server, auth):
    target = urlparse(server.url)
    metric = 'icrm_failures_total{kind="disconnect"}'
    before = _samples(requests.get(server.url + "/metrics", headers=auth, timeout=30).text)
    head = (
        f"POST /v1/judge HTTP/1.1\r\nHost: {target.netloc}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    ).encode()
    with socket.create_connection((target.hostname, target.port), timeout=30) as sock:
        sock.sendall(head + b'{"conversation": [')
        time.sleep(0.3)
    deadline = time.monotonic() + 30
    while True:  # until the server has counted the request one way or the other
        after = _samples(requests.get(server.url + "/metrics", headers=auth, timeout=30).text)
        counted = after.get(metric, 0) > before.get(metric, 0)
        if counted or _judge_500s(after) > _judge_500s(before) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    log = Path(server.log_path).read_text()
    assert "Exception in ASGI application" not in log and "ClientDisconnect" not in log
    assert _judge_500s(after) == _judge_500s(before)
    assert after.get(metric, 0) == before.get(metric, 0) + 1


def _judge_500s(samples: dict[str, float]) -> float:
    """/v1/judge's 500 answers, whatever order the exposition writes the labels in."""
    labels = ('code="500"', 'endpoint="/v1/judge"')
    return sum(
        value
        for name, value in samples.items()
        if name.startswith("icrm_http_requests_total{") and all(x in name for x in labels)
    )
