"""Every hosted verdict completes in one request on servers that compile a constraint: the
server's kind is known before the first request, every field is bounded, and a reply with
a raw control character or cut mid-field is repaired before a re-ask is spent.

The real llama.cpp server (llama-cpp-python's, SmolLM2) for what it can show; stand-ins,
named so, for vLLM and sglang (not installed here) and for a server that ignores the
constraint it is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine
from icrm_sgl.engines.hosted.fields import FieldRequest, escape_controls, read_fields
from icrm_sgl.engines.hosted.grammar import verdict_grammar
from icrm_sgl.errors import VerdictError
from icrm_sgl.judges import default_judge
from icrm_sgl.judges.rubric import load_rubric
from tests.engines.standin import VALID, StandinServer, chat_reply

GEN = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 50}
INDIVIDUAL = {"intent": "i", "checklist": "c", "strengths": "s", "weaknesses": "w", "score": 7}


class KnownServerStandin(StandinServer):
    """A stand-in that answers the GET probes of one server kind (``gets``: path -> JSON)
    and then ignores whatever constraint its POSTs carry, replying as scripted."""

    def __init__(self, gets: dict[str, Any], replies: list[tuple[int, dict[str, Any]]]) -> None:
        self.gets = gets
        super().__init__(replies)

    def _handler(self) -> type:
        server, base = self, super()._handler()

        class Handler(base):  # type: ignore[misc, valid-type]
            def do_GET(self) -> None:
                found = self.path in server.gets
                data = json.dumps(server.gets.get(self.path, {"detail": "Not Found"})).encode()
                self.send_response(200 if found else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


LLAMA_PROPS = {"/props": {"default_generation_settings": {"n_ctx": 4096}}}


def openapi(*paths: str, title: str = "FastAPI") -> dict[str, Any]:
    return {"/openapi.json": {"info": {"title": title}, "paths": {key: {} for key in paths}}}


def engine(url: str, **options: Any):
    return create_engine("openai", model_name="standin", base_url=f"{url}/v1", **options)


def completion_reply(text: str, finish_reason: str = "stop") -> tuple[int, dict[str, Any]]:
    return 200, {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "standin",
        "choices": [{"index": 0, "text": text, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40},
    }


# -- the grammar and the bounded schema ------------------------------------------------------


def test_grammar_fixes_the_keys_bounds_each_text_field_and_lists_the_values():
    request = FieldRequest.whole(default_judge("individual"), 20)
    grammar = verdict_grammar(request)
    assert grammar.splitlines()[0].startswith('root ::= "{\\"intent\\": " v0 ", \\"checklist')
    assert grammar.count("char{0,60}") == 4 and request.max_chars["intent"] == 60
    assert 'v4 ::= "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "10"' in grammar
    assert r'[^"\\\x00-\x1F]' in grammar  # no raw control character inside a string


def test_a_text_fields_own_smaller_budget_bounds_it(tmp_path):
    rubric = tmp_path / "r.toml"
    rubric.write_text(
        'name = "r"\nreward = "ok"\ntemplate = "{$fields} {$model_output}"\n'
        '[[fields]]\nname = "why"\ntype = "text"\nmax_tokens = 10\n'
        '[[fields]]\nname = "ok"\ntype = "bool"\n'
    )
    request = FieldRequest.whole(load_rubric(rubric), 64)
    assert request.text_tokens == {"why": 10} and request.max_chars == {"why": 30}
    assert 'v1 ::= "true" | "false"' in verdict_grammar(request)
    assert request.bounded_schema()["properties"]["why"]["maxLength"] == 30


def test_bounded_schema_keeps_the_score_an_enum_and_bounds_text_fields():
    schema = FieldRequest.whole(default_judge("individual"), 10).bounded_schema()
    assert schema["properties"]["score"]["enum"] == list(range(1, 11))
    assert {schema["properties"][k]["maxLength"] for k in INDIVIDUAL if k != "score"} == {30}


# -- repairs before a re-ask -----------------------------------------------------------------


def test_raw_control_characters_inside_strings_are_escaped_and_nothing_else():
    text = '{\n "intent": "line one\nline\ttwo \\"q\\"",\n "score": 7}'
    assert json.loads(escape_controls(text)) == {"intent": 'line one\nline\ttwo "q"', "score": 7}
    assert escape_controls('{"a": "\\\\"}\n') == '{"a": "\\\\"}\n'


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('{"intent": "a", "score": 7', {"intent": "a", "score": 7}),  # no value continues 7
        ('{"intent": "a", "score": 1', {"intent": "a"}),  # 1 may be the start of 10
        ('{"intent": "a", "score": 10', {"intent": "a", "score": 10}),
        ('{"intent": "a", "score": 1 ', {"intent": "a", "score": 1}),
    ],
)
def test_a_cut_reply_keeps_a_score_it_shows_whole(text, kept):
    assert read_fields(text, True, FieldRequest.whole(default_judge("individual"))) == kept


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('{"choice": "A+', {}),  # A+ or A++
        ('{"choice": "A+"', {"choice": "A+"}),
        ('{"choice": "B++"', {"choice": "B++"}),
    ],
)
def test_a_cut_reply_keeps_a_choice_it_shows_whole(text, kept):
    request = FieldRequest(default_judge("pairwise"), ("choice",))
    assert read_fields(text, True, request) == kept


def test_a_reply_with_a_raw_newline_is_accepted_without_a_re_ask_with_standin_ignoring_grammar():
    """A stand-in posing as llama.cpp that ignores the grammar and writes a raw newline."""
    text = json.dumps(INDIVIDUAL).replace('"c"', '"first\nsecond"')
    with KnownServerStandin(LLAMA_PROPS, [chat_reply(text)]) as server:
        verdict, meta = engine(server.url).judge("Judge.", default_judge("individual"), False, GEN)
    assert verdict["checklist"] == "first\nsecond"
    assert meta["requests"] == 1 and meta["retries"] == 0


def test_a_reply_cut_after_its_whole_verdict_needs_no_re_ask_with_standin_ignoring_grammar():
    text = json.dumps(VALID)[:-1]  # the closing brace is missing: "choice": "A+"
    with KnownServerStandin(LLAMA_PROPS, [chat_reply(text, "length")]) as server:
        verdict, meta = engine(server.url).judge("Judge.", default_judge("pairwise"), False, GEN)
    assert verdict == VALID and meta["requests"] == 1


def test_a_server_ignoring_the_grammar_gives_counted_failures_with_standin(pairwise_example):
    """Replies that never validate: each example fails alone, its requests bounded."""
    with KnownServerStandin(LLAMA_PROPS, [chat_reply('{"choice": "maybe"}')]) as server:
        with pytest.raises(VerdictError, match="no valid verdict after 2 replies"):
            engine(server.url, max_retries=1).judge("Judge.", default_judge("pairwise"), False, GEN)
        assert len(server.requests) == 2
        model = ICRM(
            rm_type="pairwise",
            engine="openai",
            model_name="standin",
            base_url=f"{server.url}/v1",
            num_shots=1,
            max_retries=1,
        )
        results = list(model.judge_batch([pairwise_example, pairwise_example]))
    assert [r.ok for r in results] == [False, False]
    assert all(r.error.startswith("verdict error") for r in results)


# -- the server's kind, known before the first request -----------------------------------


@pytest.mark.parametrize(
    ("gets", "kind"),
    [
        (LLAMA_PROPS, "llama.cpp"),
        (
            openapi("/v1/completions", "/extras/tokenize", title="🦙 llama.cpp Python API"),
            "llama.cpp",
        ),
        ({**openapi("/v1/completions", "/version"), "/version": {"version": "0.11.0"}}, "vllm"),
        ({**openapi("/version"), "/version": {"version": "0.9.2"}}, "vllm-legacy"),
        (openapi("/generate", "/server_info", "/v1/completions"), "sglang"),
        ({}, "none"),
    ],
)
def test_the_server_kind_is_detected_from_its_get_endpoints_with_standin(gets, kind):
    with KnownServerStandin(gets, [chat_reply("{}")]) as server:
        detected = engine(server.url)
    assert detected.completion_schema == kind
    assert detected.options.completion_schema == kind  # a verdict setting: in cache keys
    assert server.requests == []  # probes are GETs; no POST spent finding out


def test_an_option_forces_the_kind_without_probing_with_standin():
    with KnownServerStandin(LLAMA_PROPS, [chat_reply(json.dumps(VALID))]) as server:
        forced = engine(server.url, completion_schema="none")
        forced.judge("Judge.", default_judge("pairwise"), False, GEN)
    assert forced.completion_schema == "none"
    assert server.requests[0]["response_format"]["type"] == "json_schema"


def test_a_providers_own_endpoint_is_not_probed():
    together = create_engine("together", model_name="m", api_key="sk-test")
    assert together.completion_schema == "none"


@pytest.mark.parametrize("completion", [False, True], ids=["chat", "completion"])
def test_llama_kind_gets_only_the_grammar_with_standin(completion):
    reply = completion_reply if completion else chat_reply
    with KnownServerStandin(LLAMA_PROPS, [reply(json.dumps(VALID))]) as server:
        engine(server.url).judge("Judge.", default_judge("pairwise"), completion, GEN)
    (body,) = server.requests
    assert body["grammar"] == verdict_grammar(FieldRequest.whole(default_judge("pairwise"), 10))
    assert "response_format" not in body and "json_schema" not in body


@pytest.mark.parametrize(
    ("gets", "completion", "field", "read"),
    [
        (openapi("/version"), False, "response_format", lambda v: v["json_schema"]["schema"]),
        (openapi("/version"), True, "structured_outputs", lambda v: v["json"]),
        ({**openapi("/version"), "/version": {"version": "0.8.5"}}, True, "guided_json", None),
        (openapi("/server_info"), False, "response_format", lambda v: v["json_schema"]["schema"]),
        (openapi("/server_info"), True, "json_schema", json.loads),
    ],
    ids=["vllm-chat", "vllm-completion", "vllm-legacy-completion", "sglang-chat", "sglang-compl"],
)
def test_vllm_and_sglang_get_the_bounded_schema_with_standin(gets, completion, field, read):
    reply = completion_reply if completion else chat_reply
    with KnownServerStandin(gets, [reply(json.dumps(VALID))]) as server:
        verdict, meta = engine(server.url).judge(
            "Judge.", default_judge("pairwise"), completion, GEN
        )
    assert verdict == VALID and meta["requests"] == 1
    (body,) = server.requests
    schema = (read or (lambda v: v))(body[field])
    assert schema == FieldRequest.whole(default_judge("pairwise"), 10).bounded_schema()
    assert schema["properties"]["analysis of A"]["maxLength"] == 30
    assert "grammar" not in body


def test_a_refused_chat_form_counts_as_a_request_on_an_unknown_server_with_standin():
    from tests.engines.standin import error_reply

    refused = error_reply(500, "response_format: Input should be 'text' or 'json_object'")
    with StandinServer([refused, chat_reply(json.dumps(VALID))]) as server:
        _, meta = engine(server.url).judge("Judge.", default_judge("pairwise"), False, GEN)
    assert meta["requests"] == 2 and meta["attempts"] == 1


def test_records_carry_requests_and_completion_tokens_with_standin(pairwise_example):
    with KnownServerStandin(LLAMA_PROPS, [chat_reply(json.dumps(VALID))]) as server:
        model = ICRM(
            rm_type="pairwise",
            engine="openai",
            model_name="standin",
            base_url=f"{server.url}/v1",
            num_shots=1,
        )
        (result,) = model.judge_batch([pairwise_example])
    assert result.record()["meta"]["requests"] == 1
    assert result.record()["meta"]["completion_tokens"] == 20


# -- the real llama.cpp server ----------------------------------------------------------------


@pytest.mark.parametrize(
    "completion", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["chat", "completion"]
)
def test_one_bounded_request_per_verdict_on_llama_server(
    llama_server, individual_example, completion
):
    """Detected as llama.cpp, sent the grammar: one request, no refusal, every text field
    within its length, the reply within its token budget."""
    with ICRM(
        rm_type="individual",
        engine="openai",
        base_url=llama_server,
        num_shots=0,
        completion=completion,
        max_retries=0,
        logprobs=False,  # the bound is the point; probabilities: test_hosted_logprobs
    ) as model:
        assert model.backend.completion_schema == "llama.cpp"
        result = model.judge(individual_example, max_tokens=80, temperature=0.0)
    default_judge("individual").validate(result.verdict)
    request = FieldRequest.whole(default_judge("individual"), 20)
    meta = result.meta
    assert meta["requests"] == meta["attempts"] == 1 and meta["retries"] == 0
    assert meta["completion_tokens"] <= request.max_tokens
    for key, chars in request.max_chars.items():
        assert len(result.verdict[key]) <= chars, key


def test_a_reply_cut_mid_field_on_llama_server_keeps_the_field_closed(llama_server):
    """A budget too small for the verdict: the real reply stops inside a text field, which
    is kept, closed, for the follow-up to ask only for the rest."""
    backend = create_engine("openai", base_url=llama_server)
    try:
        request = FieldRequest.whole(default_judge("individual"), 64)
        messages = [{"role": "user", "content": "Judge this reply to 'Say hi': 'Hello!'"}]
        reply = backend.send(messages, request, False, {"max_tokens": 12, "temperature": 0.0})
    finally:
        backend.shutdown()
    assert reply.cut and reply.text.startswith('{"intent": "')
    found = read_fields(reply.text, True, request)
    assert list(found) == ["intent"] and found["intent"]
    assert request.missing(found).keys == ("checklist", "strengths", "weaknesses", "score")
