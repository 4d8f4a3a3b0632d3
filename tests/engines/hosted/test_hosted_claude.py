"""The Claude engine: request building and response parsing, through the ``anthropic``
SDK against a local stand-in server speaking the Messages API shape (no network)."""

from __future__ import annotations

import pytest

from icrm_sgl.engines import create_engine
from icrm_sgl.engines.hosted.claude import TOOL_NAME
from icrm_sgl.engines.hosted.fields import FieldRequest
from icrm_sgl.errors import EngineError
from icrm_sgl.judges import default_judge
from tests.engines.hosted.test_hosted_standin import GEN, VALID
from tests.engines.standin import StandinServer, error_reply

BAD = {**VALID, "choice": "maybe"}


def message(tool_input: dict) -> tuple[int, dict]:
    return 200, {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-standin",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": TOOL_NAME, "input": tool_input}],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 300, "output_tokens": 40, "cache_read_input_tokens": 256},
    }


def claude(url: str, **options):
    return create_engine(
        "claude",
        model_name="claude-standin",
        base_url=url,
        api_key="sk-ant-test",
        backoff_base=0.001,
        backoff_cap=0.01,
        **options,
    )


def test_claude_request_building_without_network():
    with StandinServer([message(VALID)]) as server:
        verdict, meta = claude(server.url).judge(
            "Judge this.", default_judge("pairwise"), False, GEN
        )
    assert verdict == VALID
    body = server.requests[0]
    assert server.paths == ["/v1/messages"]
    assert body["tools"][0]["input_schema"] == default_judge("pairwise").json_schema()
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert body["messages"] == [{"role": "user", "content": "Judge this."}]
    # Greedy is sent as temperature 0 (the API's own default is 1.0); top_p 1.0 is a no-op.
    assert body["max_tokens"] == FieldRequest.whole(default_judge("pairwise"), 50 // 5).max_tokens
    assert body["temperature"] == 0.0 and "top_p" not in body
    assert meta["prompt_tokens"] == 300 and meta["completion_tokens"] == 40
    assert meta["cached_tokens"] == 256 and meta["engine"] == "claude"


def test_claude_invalid_tool_input_is_re_asked_without_network():
    with StandinServer([message(BAD), message(VALID)]) as server:
        verdict, meta = claude(server.url).judge(
            "Judge this.", default_judge("pairwise"), False, GEN
        )
    assert verdict == VALID and meta["retries"] == 1
    fix = server.requests[1]["messages"][2]["content"]
    assert "choice" in fix


def test_claude_sampling_goes_in_the_body_without_network():
    with StandinServer([message(VALID)]) as server:
        claude(server.url).judge(
            "J.", default_judge("pairwise"), False, {**GEN, "temperature": 0.7}
        )
    assert server.requests[0]["temperature"] == 0.7 and "top_p" not in server.requests[0]


def test_claude_auth_error_hides_the_key_without_network():
    with (
        StandinServer(
            [
                (
                    401,
                    {
                        "type": "error",
                        "error": {"type": "authentication_error", "message": "bad sk-ant-test"},
                    },
                )
            ]
        ) as server,
        pytest.raises(EngineError) as info,
    ):
        claude(server.url).judge("J.", default_judge("pairwise"), False, GEN)
    assert "sk-ant-test" not in str(info.value) and len(server.requests) == 1


def test_claude_overloaded_is_retried_without_network():
    with StandinServer([error_reply(529, "overloaded"), message(VALID)]) as server:
        _, meta = claude(server.url).judge("J.", default_judge("pairwise"), False, GEN)
    assert meta["attempts"] == 2
