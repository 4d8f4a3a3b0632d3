"""Retries, back-off and HTTP errors of the OpenAI-compatible engine, driven through the
official client against scripted stand-in HTTP servers (no network, no model)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine
from icrm_sgl.engines.hosted.fields import FieldRequest
from icrm_sgl.errors import EngineError, InputError, VerdictError
from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES
from tests.engines.standin import VALID, StandinServer, chat_reply, error_reply

INVALID = {**VALID, "choice": "A+++"}
FAST_BACKOFF = {"backoff_base": 0.001, "backoff_cap": 0.01}
CLI = [sys.executable, "-m", "icrm_sgl.cli"]
GEN = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 50}


def engine(url: str, **options):
    return create_engine(
        "openai",
        model_name="standin",
        base_url=f"{url}/v1",
        api_key="sk-test",
        **FAST_BACKOFF,
        **options,
    )


def test_retry_on_invalid_reply_with_standin_server():
    replies = [chat_reply(json.dumps(INVALID)), chat_reply(json.dumps(VALID))]
    with StandinServer(replies) as server:
        verdict, meta = engine(server.url).judge(
            "Judge this.", default_judge("pairwise"), False, GEN
        )
    assert verdict == VALID
    assert meta["retries"] == 1 and meta["attempts"] == 2
    assert meta["prompt_tokens"] == 200 and meta["cached_tokens"] == 128
    second = server.requests[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"] == json.dumps(INVALID)
    assert "choice" in second[2]["content"] and "A++" in second[2]["content"]
    assert server.requests[0]["response_format"]["type"] == "json_schema"


def test_completion_mode_sends_schema_fields_with_standin_server():
    reply = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "standin",
        "choices": [{"index": 0, "text": json.dumps(VALID), "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    with StandinServer([(200, reply)]) as server:
        vllm = engine(server.url, completion_schema="vllm")
        verdict, meta = vllm.judge("Judge this.\n", default_judge("pairwise"), True, GEN)
    assert verdict == VALID and meta["cached_tokens"] is None
    body = server.requests[0]
    assert server.paths == ["/v1/completions"]
    assert body["structured_outputs"]["json"]["required"] == list(VALID)
    # 50 tokens for five text fields: 10 each, plus the choice and room to close the object.
    assert body["prompt"] == "Judge this.\n"
    assert body["max_tokens"] == FieldRequest.whole(default_judge("pairwise"), 10).max_tokens


def test_invalid_replies_exhaust_retries_with_standin_server():
    with StandinServer([chat_reply("not json")]) as server, pytest.raises(VerdictError) as info:
        engine(server.url, max_retries=2).judge("Judge.", default_judge("pairwise"), False, GEN)
    assert info.value.attempts == 3 and len(server.requests) == 3
    assert info.value.raw == "not json"


def test_invalid_verdict_is_a_counted_failure_in_a_batch_with_standin_server(pairwise_example):
    with StandinServer([chat_reply(json.dumps(INVALID))]) as server:
        model = ICRM(
            rm_type="pairwise",
            engine="openai",
            model_name="standin",
            base_url=f"{server.url}/v1",
            api_key="sk-test",
            completion=False,
            max_retries=1,
        )
        (result,) = model.judge_batch([pairwise_example])
    assert not result.ok and result.verdict is None
    assert result.error.startswith("verdict error") and result.meta["retries"] == 1


def test_backoff_on_503_then_success_with_standin_server():
    replies = [error_reply(503, "busy"), error_reply(503, "busy"), chat_reply(json.dumps(VALID))]
    with StandinServer(replies) as server:
        verdict, meta = engine(server.url).judge("Judge.", default_judge("pairwise"), False, GEN)
    assert verdict == VALID and meta["attempts"] == 3 and meta["retries"] == 0


def test_always_503_fails_after_the_bound_with_standin_server():
    with StandinServer([error_reply(503, "busy")]) as server:
        started = time.perf_counter()
        with pytest.raises(EngineError, match=r"HTTP 503.*gave up after 4 attempts"):
            engine(server.url, max_attempts=4).judge(
                "Judge.", default_judge("pairwise"), False, GEN
            )
    assert len(server.requests) == 4 and time.perf_counter() - started < 2


def test_http_401_fails_at_once_without_the_key_with_standin_server():
    body = error_reply(401, "Incorrect API key provided: sk-test")
    with StandinServer([body]) as server, pytest.raises(EngineError) as info:
        engine(server.url).judge("Judge.", default_judge("pairwise"), False, GEN)
    assert len(server.requests) == 1
    assert "authentication failed (HTTP 401)" in str(info.value)
    assert "sk-test" not in str(info.value) and not info.value.retryable


def test_other_4xx_fails_at_once_with_the_server_message_with_standin_server():
    reply = error_reply(404, "model standin does not exist")
    with StandinServer([reply]) as server, pytest.raises(EngineError, match=r"HTTP 404: .*exist"):
        engine(server.url).judge("Judge.", default_judge("pairwise"), False, GEN)
    assert len(server.requests) == 1


def test_unreachable_server_fails_after_bounded_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(EngineError, match=r"cannot reach the server.*after 3 attempts"):
        engine(f"http://127.0.0.1:{port}", max_attempts=3).judge(
            "J.", default_judge("pairwise"), False, GEN
        )
    assert time.perf_counter() - started < 5


def test_missing_key_for_a_hosted_provider_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(InputError, match="set TOGETHER_API_KEY or pass api_key"):
        create_engine("together", model_name="m")


def test_own_server_needs_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert create_engine("openai", model_name="m", base_url="http://127.0.0.1:1/v1")


def test_presets_set_their_endpoints(monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-mistral")
    mistral = create_engine("mistral", model_name="mistral-small-latest")
    assert str(mistral.client.base_url).startswith("https://api.mistral.ai/v1")
    vllm = create_engine("vllm", model_name="m", endpoint="http://127.0.0.1:8000/v1")
    assert str(vllm.client.base_url).startswith("http://127.0.0.1:8000/v1")
    assert vllm.completion_schema == "vllm"  # a model and no endpoint launches: test_vllm_engine


def test_cli_batch_summary_counts_retries_and_tokens_with_standin_server(tmp_path):
    example = json.loads((EXAMPLES / "test_pairwise.json").read_text())
    src = tmp_path / "batch.jsonl"
    src.write_text("".join(json.dumps({"id": i, **example}) + "\n" for i in "ab"))
    replies = [chat_reply(json.dumps(INVALID))] + [chat_reply(json.dumps(VALID))] * 2
    with StandinServer(replies) as server:
        engine_args = ["--engine", "openai", "--base-url", f"{server.url}/v1", "--model", "m"]
        proc = subprocess.run(
            [*CLI, "score", str(src), "--chat", *engine_args, "--concurrency", "1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    assert "2 verdicts, 0 malformed examples skipped, 0 failed, 1 retry, 360 tokens" in (
        proc.stderr
    )
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {r["id"] for r in records} == {"a", "b"}
    assert all(r["verdict"] == VALID for r in records)
