"""A hosted preset's flags come from its capabilities: ``-E logprobs=...`` sets what the
engine declares, and its requests ask for log-probabilities exactly when it declares
``probabilities`` (a stand-in server, no model)."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.engines import create_engine
from icrm_sgl.judges import default_judge
from tests.engines.standin import VALID, StandinServer, chat_reply


@pytest.mark.parametrize(
    ("engine", "logprobs", "probabilities"),
    [("openai", None, True), ("openai", False, False), ("together", True, True)],
)
def test_logprobs_option_sets_the_declared_probabilities(engine, logprobs, probabilities):
    given = {} if logprobs is None else {"logprobs": logprobs}
    with StandinServer([chat_reply(json.dumps(VALID))]) as server:
        built = create_engine(
            engine,
            model_name="standin",
            base_url=f"{server.url}/v1",
            api_key="sk-test",
            completion_schema="none",
            **given,
        )
        built.judge("Judge this.", default_judge("pairwise"), False, {"max_tokens": 50})
        built.shutdown()
    assert built.capabilities.probabilities is probabilities
    assert ("logprobs" in server.requests[0]) is probabilities
