"""A third-party engine, defined here, registered with ``register_engine``: it declares
its own capabilities and passes or fails the same checks as the built-in engines."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine, engine_names, register_engine
from icrm_sgl.engines.capabilities import BASIC_SAMPLING, Capabilities
from icrm_sgl.engines.protocol import EngineOptions
from icrm_sgl.errors import InputError
from icrm_sgl.judges import Judge
from tests.engines.standin import VALID as VERDICT


class FixedOptions(EngineOptions):
    """The test engine's settings: ``verbosity`` never changes a verdict."""

    model_name: str | None = None
    seed: int | None = None
    verbosity: int = 0
    run_only: ClassVar[frozenset[str]] = frozenset({"verbosity"})


class FixedVerdictEngine:
    """A stand-in judge (no model behind it: the test is about registration) that
    answers every request with the same verdict; chat only, no ``top_k``."""

    capabilities = Capabilities(
        sampling=BASIC_SAMPLING,
        modes=("chat",),
        constraint="a fixed answer",
        probabilities=False,
        programs=False,
    )
    chat_template_known = True
    program_layout = "per_field"
    batch_threads = 2

    def __init__(self, options: FixedOptions) -> None:
        self.options = options
        self.prompts: list[str] = []
        self.closed = False

    def get_model_name(self) -> str:
        return "fixed"

    def shutdown(self) -> None:
        self.closed = True

    def judge(
        self, prompt: str, judge: Judge, completion: bool, gen: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        self.prompts.append(prompt)
        return dict(VERDICT), {"engine": "fixed-verdict", "prompt_tokens": 0}


def make_fixed(model_name: str | None = None, **options: Any) -> FixedVerdictEngine:
    return FixedVerdictEngine(FixedOptions(model_name=model_name, **options))


class Undeclared(FixedVerdictEngine):
    """The same engine without its capabilities."""

    capabilities = None  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """Both engines registered for one test; the registry is as before afterwards."""
    from icrm_sgl import engines

    monkeypatch.setattr(engines, "_ENGINES", dict(engines._ENGINES))
    register_engine("fixed-verdict", make_fixed)
    register_engine("undeclared", lambda model_name=None, **o: Undeclared(FixedOptions(**o)))
    yield


def model(**options: Any) -> ICRM:
    return ICRM(rm_type="pairwise", engine="fixed-verdict", num_shots=1, **options)


def test_a_registered_engine_judges_like_a_built_in(pairwise_example):
    assert "fixed-verdict" in engine_names()
    with model() as judge:
        assert judge.completion is False  # its declared default mode
        result = judge.judge(pairwise_example, max_tokens=100)
        assert result.verdict == VERDICT
        assert judge.fingerprint()["engine_identity"]["options"] == {
            "model_name": None,
            "seed": 42,
        }
        assert len(judge.backend.prompts) == 1


@pytest.mark.parametrize(
    ("engine", "options", "message"),
    [
        ("fixed-verdict", {"completion": True}, "does not serve completion mode"),
        ("claude", {"completion": True}, "does not serve completion mode"),
    ],
)
def test_a_mode_it_does_not_declare_is_refused_as_for_claude(engine, options, message):
    extra = {"model_name": "m", "api_key": "k"} if engine == "claude" else {}
    with pytest.raises(InputError, match=rf"engine '{engine}' {message}"):
        ICRM(rm_type="pairwise", engine=engine, num_shots=1, **extra, **options)


@pytest.mark.parametrize("engine", ["fixed-verdict", "claude"])
def test_a_sampling_option_it_does_not_declare_is_refused_as_for_claude(engine, pairwise_example):
    extra = {"model_name": "m", "api_key": "k"} if engine == "claude" else {}
    refused = rf"engine '{engine}' does not support frequency_penalty"
    judge = ICRM(rm_type="pairwise", engine=engine, num_shots=1, **extra)
    with judge, pytest.raises(InputError, match=refused):
        list(judge.judge_batch([pairwise_example], frequency_penalty=0.5))


def test_an_unknown_option_is_refused_as_for_the_built_ins():
    with pytest.raises(InputError, match=r"engine 'fixed-verdict': no option 'n_ctx'"):
        model(n_ctx=4096)
    with pytest.raises(InputError, match=r"engine 'claude': no option 'n_ctx'"):
        ICRM(engine="claude", model_name="m", api_key="k", n_ctx=4096)


def test_an_engine_that_does_not_declare_its_capabilities_is_refused():
    with pytest.raises(InputError) as info:
        create_engine("undeclared")
    assert str(info.value) == (
        "engine 'undeclared' does not declare capabilities (Capabilities); "
        "see icrm_sgl.engines.protocol.Engine"
    )
    with pytest.raises(InputError, match="does not declare capabilities"):
        ICRM(engine="undeclared")
