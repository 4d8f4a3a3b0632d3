"""Failures keep their causes: engine and verdict failures are per example, programming
errors propagate, errors are chained, and no warnings filter outlives a batch."""

from __future__ import annotations

import warnings

import openai
import pytest
from pydantic import ValidationError
from sglang.lang.backend.base_backend import BaseBackend

from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine
from icrm_sgl.engines.local.engine import LocalBackend, LocalOptions
from icrm_sgl.errors import EngineError, InputError
from icrm_sgl.judges import default_judge
from tests.engines.standin import StandinServer, error_reply


class FailingStandinBackend(BaseBackend):
    """A stand-in program engine whose every generation raises ``error``; it declares
    what the local engine declares."""

    batch_threads = 1
    capabilities = LocalBackend.capabilities
    chat_template_known = True
    program_layout = "per_field"

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.options = LocalOptions()

    def get_model_name(self) -> str:
        return "failing-standin"

    def generate(self, s, sampling_params):
        raise self.error


def run(backend: BaseBackend, examples: list) -> list:
    model = ICRM(rm_type="pairwise", num_shots=1, backend=backend)
    return list(model.judge_batch(examples, max_tokens=40))


def test_engine_error_is_recorded_per_example_with_failing_standin(pairwise_example):
    backend = FailingStandinBackend(EngineError("context window exceeded"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = run(backend, [pairwise_example, {"id": "bad"}, pairwise_example])
    assert [r.ok for r in results] == [False, False, False]
    assert results[0].id == "bad" and results[0].meta["stage"] == "input"
    assert results[1].error == "engine error: context window exceeded"
    assert not [w for w in caught if "stream_executor" in str(w.message)]


def test_a_programming_error_propagates_out_of_the_batch_with_failing_standin(
    pairwise_example,
):
    backend = FailingStandinBackend(ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError, match="a bug"):
        run(backend, [pairwise_example])


def test_no_process_wide_warnings_filter_is_installed():
    import icrm_sgl.judging.icrm
    import icrm_sgl.runners.programs

    assert icrm_sgl.judging.icrm.ICRM and icrm_sgl.runners.programs.ProgramRunner

    assert not [f for f in warnings.filters if f[1] and "stream_executor" in f[1].pattern]


def test_bad_engine_option_keeps_the_validation_error_as_its_cause():
    with pytest.raises(InputError) as info:
        create_engine("local", n_ctx="many")
    assert isinstance(info.value.__cause__, ValidationError)


def test_http_error_keeps_the_client_error_as_its_cause_with_standin_server():
    with StandinServer([error_reply(404, "no such model")]) as server:
        engine = create_engine("openai", model_name="m", base_url=f"{server.url}/v1", api_key="k")
        with pytest.raises(EngineError) as info:
            engine.judge("Judge.", default_judge("pairwise"), False, {"max_tokens": 20})
    assert isinstance(info.value.__cause__, openai.NotFoundError)
