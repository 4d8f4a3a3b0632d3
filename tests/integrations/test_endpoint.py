"""``ICRMReward(endpoint=...)`` against a real ``icrm-sgl serve`` on 127.0.0.1 (local engine,
SmolLM2): the same rewards as in-process, smaller requests after a 413, 429 waited out
with Retry-After, and a bounded wait when nothing answers."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from icrm_sgl.engines.server_process import free_port
from icrm_sgl.errors import EngineError
from icrm_sgl.integrations.trl import ICRMReward
from tests.conftest import FAST

PROMPTS = ["What is 7 times 6?", "Name a primary colour."]
COMPLETIONS = ["42.", "Red."]


def metric(server, name: str) -> float:
    """The sum of one Prometheus metric's samples whose line starts with ``name``."""
    text = requests.get(server.url + "/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_served_rewards_come_from_the_judge_in_smaller_requests(reward_server):
    """Two examples in a request exceed the server's queue (413): the client halves the
    request until it fits; a multi-turn chat, which /get_reward cannot carry, gets None."""
    too_large = 'icrm_http_requests_total{code="413",endpoint="/get_reward"'
    before = {name: metric(reward_server, name) for name in (too_large, "icrm_verdicts_total")}
    chat = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    with ICRMReward(endpoint=reward_server.url, batch_size=4, timeout=900) as served:
        got = served([*PROMPTS, chat], [*COMPLETIONS, "Bye!"])
    assert all(1.0 <= r <= 10.0 for r in got[:2]) and got[2] is None
    assert served.stats.completions == 3 and served.stats.failed == 1
    assert metric(reward_server, too_large) == before[too_large] + 2  # 4 -> 2 -> 1
    assert metric(reward_server, "icrm_verdicts_total") == before["icrm_verdicts_total"] + 2


def test_a_full_queue_is_waited_out_with_retry_after(reward_server):
    """While another client's example waits in the one-place queue, the reward call gets
    429, waits as Retry-After says, and then gets its reward."""
    busy = metric(reward_server, 'icrm_failures_total{kind="queue_full"}')
    # Long replies keep the server busy for seconds, so that one waits in the queue.
    others = [
        threading.Thread(
            target=requests.post,
            args=(reward_server.url + "/get_reward",),
            kwargs={
                "json": {"query": [f"a {c}" + " and so on" * 200], "prompts": ["a"]},
                "timeout": 900,
            },
        )
        for c in "bc"
    ]
    for thread in others:
        thread.start()
        time.sleep(0.2)
    waited = time.monotonic() + 120
    while requests.get(reward_server.url + "/health", timeout=30).json()["queue_depth"] < 1:
        assert time.monotonic() < waited, "the other clients' examples never queued"
        time.sleep(0.05)
    with ICRMReward(endpoint=reward_server.url, timeout=900) as served:
        got = served(PROMPTS[:1], COMPLETIONS[:1])
    for thread in others:
        thread.join()
    assert 1.0 <= got[0] <= 10.0
    assert metric(reward_server, 'icrm_failures_total{kind="queue_full"}') > busy


def test_an_unreachable_server_fails_within_the_timeout():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(EngineError, match="cannot reach"):
        ICRMReward(endpoint=url, timeout=2)(["q"], ["a"])
    assert time.monotonic() - started < 15


def test_endpoint_takes_no_local_judge_settings():
    with pytest.raises(ValueError, match="server's model and settings"):
        ICRMReward(endpoint="http://127.0.0.1:1", gen=FAST)
