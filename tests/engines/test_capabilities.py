"""Engine capabilities: declared once per engine, enforced before any request, and the
hosted engines' default requests are what their providers serve."""

from __future__ import annotations

import json

import pytest

from icrm_sgl import ICRM
from icrm_sgl.engines import engine_names
from icrm_sgl.errors import InputError
from icrm_sgl.judges import default_judge
from icrm_sgl.judges.verdicts import SCORES
from tests.engines.hosted.test_hosted_claude import message
from tests.engines.hosted.test_hosted_standin import VALID
from tests.engines.standin import OPENAI_CHAT_FIELDS, StandinServer, chat_reply


def test_every_built_in_engine_declares_its_capabilities():
    from icrm_sgl.engines.hosted.claude import ClaudeEngine
    from icrm_sgl.engines.hosted.openai_compat import PRESETS
    from icrm_sgl.engines.local.engine import LocalBackend
    from icrm_sgl.engines.sglang.backend import SglangBackend

    declared = {
        "local": LocalBackend.capabilities,
        "sglang": SglangBackend.capabilities,
        "claude": ClaudeEngine.capabilities,
        **{name: preset.capabilities for name, preset in PRESETS.items()},
    }
    assert sorted(declared) == engine_names()
    for name, caps in declared.items():
        assert {"max_tokens", "temperature", "top_p"} <= caps.sampling, name
        assert set(caps.modes) <= {"completion", "chat"} and caps.modes, name


def hosted(engine: str, url: str, **options) -> ICRM:
    return ICRM(
        rm_type="pairwise",
        engine=engine,
        model_name="standin",
        base_url=url if engine == "claude" else f"{url}/v1",
        api_key="sk-test",
        num_shots=1,
        **options,
    )


@pytest.mark.parametrize(
    ("engine", "option"),
    [
        ("claude", {"frequency_penalty": 0.5}),
        ("claude", {"presence_penalty": 0.1}),
        ("openai", {"top_k": 20}),
        ("mistral", {"top_k": 5}),
    ],
)
def test_unsupported_sampling_option_is_refused_before_any_request_with_standin_server(
    engine, option, pairwise_example
):
    with StandinServer([chat_reply(json.dumps(VALID))]) as server:
        model = hosted(engine, server.url)
        with pytest.raises(
            InputError, match=rf"engine '{engine}' does not support {next(iter(option))}"
        ):
            list(model.judge_batch([pairwise_example], **option))
    assert server.requests == []


@pytest.mark.parametrize("engine", ["claude", "mistral"])
def test_completion_mode_on_a_chat_only_engine_is_refused(engine):
    with pytest.raises(InputError, match=rf"engine '{engine}' does not serve completion mode"):
        hosted(engine, "http://127.0.0.1:9", completion=True)


@pytest.mark.parametrize(
    ("engine", "completion"),
    [("openai", False), ("together", False), ("mistral", False), ("claude", False)],
)
def test_hosted_engines_default_to_the_mode_their_provider_serves(engine, completion):
    assert hosted(engine, "http://127.0.0.1:9").completion is completion


def test_local_engine_defaults_to_completion(local_backend):
    assert ICRM(rm_type="pairwise", num_shots=1, backend=local_backend).completion is True


def test_default_openai_request_is_plain_chat_with_strict_standin_server(pairwise_example):
    """A stand-in that refuses unknown fields, as OpenAI does, accepts the default request."""
    with StandinServer([chat_reply(json.dumps(VALID))], OPENAI_CHAT_FIELDS) as server:
        result = hosted("openai", server.url).judge(pairwise_example, max_tokens=200)
    assert result.verdict == VALID
    assert server.paths == ["/v1/chat/completions"]
    body = server.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert (
        body["response_format"]["json_schema"]["schema"] == default_judge("pairwise").json_schema()
    )
    assert set(body) <= OPENAI_CHAT_FIELDS and "grammar" not in body


def test_top_k_goes_in_the_body_where_declared_with_standin_server(pairwise_example):
    with StandinServer([message(VALID)]) as server:
        hosted("claude", server.url).judge(pairwise_example, max_tokens=100, top_k=20)
    assert server.requests[0]["top_k"] == 20 and server.requests[0]["temperature"] == 0.0


def test_mistral_gets_its_seed_field_with_standin_server(pairwise_example):
    with StandinServer([chat_reply(json.dumps(VALID))]) as server:
        hosted("mistral", server.url).judge(pairwise_example, max_tokens=100)
    body = server.requests[0]
    assert body["random_seed"] == 42 and "seed" not in body


def test_grammar_schema_bounds_the_score_by_an_enum_and_drops_lengths():
    schema = default_judge("individual").grammar_schema()
    assert schema["properties"]["score"]["enum"] == list(SCORES)
    assert "maximum" not in json.dumps(schema) and "maxLength" not in json.dumps(schema)
    assert schema["required"] == default_judge("individual").json_schema()["required"]
    assert default_judge("pairwise").grammar_schema()["properties"]["choice"]["enum"][0] == "A++"
