"""Hosted engines against a real OpenAI-compatible server (llama.cpp + SmolLM2) through
the official ``openai`` client: the schema reaches the server and verdicts validate."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import ValidationError

from icrm_sgl import ICRM
from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES

#: A small budget: the grammar bounds every field by it, so the verdict closes in one
#: request whatever the budget.
BUDGET = {"max_tokens": 60}
#: These tests check the constraint, not probabilities (test_hosted_logprobs and
#: test_judges_hosted do): llama-cpp-python's server spends ~0.2 s a token on log-probabilities
#: over the whole vocabulary, six times the verdict's own time here.
NO_LOGPROBS = {"logprobs": False}


def hosted(base_url: str, completion: bool, **options) -> ICRM:
    """The openai engine on the llama.cpp server (its kind detected, not named)."""
    return ICRM(
        rm_type="pairwise",
        engine="openai",
        base_url=base_url,
        num_shots=1,
        completion=completion,
        **NO_LOGPROBS,
        **options,
    )


def raw_reply(base_url: str, prompt: str, completion: bool) -> str:
    """The server's reply to the judge prompt with no schema or format in the request."""
    client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)
    if completion:
        return client.completions.create(model="m", prompt=prompt, max_tokens=60).choices[0].text
    messages = [{"role": "user", "content": prompt}]
    raw = client.chat.completions.create(model="m", messages=messages, max_tokens=60)
    return raw.choices[0].message.content


#: Chat mode runs in the default run through the CLI test below; this pair of checks in chat
#: mode too with ``-m slow``.
@pytest.mark.parametrize(
    "completion", [pytest.param(False, marks=pytest.mark.slow), True], ids=["chat", "completion"]
)
def test_llama_server_verdict_is_valid_and_unconstrained_reply_is_not(
    llama_server, pairwise_example, completion
):
    """The constraint reaches the server: without it the same prompt gets no valid verdict.
    The server is known as llama.cpp before the first request, so none is refused."""
    with hosted(llama_server, completion) as model:
        result = model.judge(pairwise_example, **BUDGET)
        prompt = model.render_prompt(pairwise_example, model.sample_shots(1))
        assert model.backend.completion_schema == "llama.cpp"
    assert list(result.verdict) == default_judge("pairwise").keys
    default_judge("pairwise").validate(result.verdict)
    assert result.meta["engine"] == "openai" and result.meta["prompt_tokens"] > 0
    assert result.meta["completion_tokens"] > 0 and result.meta["retries"] == 0
    assert result.meta["requests"] == 1
    assert "cached_tokens" in result.meta
    with pytest.raises(ValidationError):
        default_judge("pairwise").validate(raw_reply(llama_server, prompt, completion))


def test_vllm_preset_in_completion_mode_with_llama_schema_fields(llama_server, pairwise_example):
    with ICRM(
        rm_type="pairwise",
        engine="vllm",
        endpoint=llama_server,
        num_shots=1,
        completion_schema="llama.cpp",
        **NO_LOGPROBS,
    ) as model:
        result = model.judge(pairwise_example, **BUDGET)
    default_judge("pairwise").validate(result.verdict)
    assert result.meta["engine"] == "vllm"


@pytest.mark.slow  # the budget test in test_hosted_budget.py is its CLI twin by default
def test_cli_scores_against_llama_server(llama_server, run_cli):
    args = ["--engine", "openai", "--base-url", llama_server, "--model", "smollm2"]  # chat
    args += ["-E", "logprobs=false"]
    proc = run_cli(
        "score", EXAMPLES / "test_pairwise.json", *args, "--num-shots", "1", "--max-tokens", "60"
    )
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    default_judge("pairwise").validate(json.loads(proc.stdout))


@pytest.mark.slow
def test_batch_of_twenty_yields_valid_verdicts_or_counted_failures(
    llama_server, individual_example
):
    examples = [{"id": f"ex{i}", **individual_example} for i in range(20)]
    with ICRM(
        rm_type="individual",
        engine="openai",
        base_url=llama_server,
        num_shots=1,
        max_retries=1,
    ) as model:
        results = list(model.judge_batch(examples, max_tokens=200, num_threads=4))
    assert sorted(r.id for r in results) == sorted(e["id"] for e in examples)
    print(f"{sum(r.ok for r in results)} valid, {sum(not r.ok for r in results)} failed")
    for result in results:
        if result.ok:
            default_judge("individual").validate(result.verdict)
        else:
            assert result.verdict is None
            assert result.error.startswith(("verdict error", "engine error"))


def test_individual_completion_score_is_bounded_by_the_enum_on_llama_server(
    llama_server, individual_example
):
    """The integer bound used to reach llama.cpp's grammar converter unenforced (scores
    above 10); as an enum it holds on the first reply."""
    with ICRM(
        rm_type="individual",
        engine="openai",
        base_url=llama_server,
        num_shots=1,
        completion=True,
        completion_schema="llama.cpp",
        max_retries=0,
        **NO_LOGPROBS,
    ) as model:
        result = model.judge(individual_example, **BUDGET)
    assert result.verdict["score"] in range(1, 11) and result.meta["retries"] == 0
