"""sglang's frontend internals that the engines use, checked on the installed sglang: the
version is the supported one, and each internal still means what the adapter says."""

from __future__ import annotations

import warnings
from importlib import metadata

import pytest
from packaging.requirements import Requirement

# Not ``import sglang as sgl``: pytest probes every module-level name while collecting, and
# a probe of the package runs its deferred ``__init__`` (torch: ~8 s of CPU per worker).
from sglang.lang import api as sgl
from sglang.lang.backend.base_backend import BaseBackend

from icrm_sgl.engines.sglang.frontend import (
    SUPPORTED,
    program_errors_quiet,
    program_run_id,
    program_text,
)


class RecordingBackend(BaseBackend):
    """A stand-in backend (no model: the executor is what is under test) that answers
    every gen with "x" and records what the adapter reads; ``fail`` makes gen raise."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.seen: list[tuple[str, str]] = []

    def generate(self, s, sampling_params):
        if self.fail:
            raise RuntimeError("engine down")
        self.seen.append((program_text(s), program_run_id(s)))
        return "x", {}


@sgl.function
def two_gens(s, question):
    s += "Q: " + question + "\n"
    s += sgl.gen("a", max_tokens=1)
    s += "|"
    s += sgl.gen("b", max_tokens=1)


def test_the_installed_sglang_is_the_supported_version():
    assert metadata.version("sglang") in Requirement(SUPPORTED).specifier


def test_text_and_run_id_are_the_prompt_so_far_and_one_id_per_run():
    backend = RecordingBackend()
    for question in ("why?", "how?"):
        two_gens.run(question=question, backend=backend).sync()  # the executor is a thread
    texts = [text for text, _ in backend.seen]
    assert texts == ["Q: why?\n", "Q: why?\nx|", "Q: how?\n", "Q: how?\nx|"]
    ids = [run_id for _, run_id in backend.seen]
    assert ids[0] == ids[1] != ids[2] == ids[3]


def test_a_failed_program_warns_with_the_text_the_filter_matches():
    with pytest.warns(UserWarning, match="Error in stream_executor"):
        state = two_gens.run(question="q", backend=RecordingBackend(fail=True))
        assert isinstance(state.error(), RuntimeError)  # waits for the executor's thread
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with program_errors_quiet():
            state = two_gens.run(question="q", backend=RecordingBackend(fail=True))
            assert isinstance(state.error(), RuntimeError)
    assert not [w for w in caught if "stream_executor" in str(w.message)]
