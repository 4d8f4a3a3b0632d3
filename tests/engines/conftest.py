"""The sglang CPU server, started once per session for the ``sglang_server`` tier (its
tests and the router tests that put it behind smg); the llama.cpp server is in
tests/conftest.py (panels and eval use it too)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def sglang_backend(converted_checkpoint):
    """A real sglang server launched by the engine, stopped with its process group once the
    run leaves this package (every test that uses it is here, in one xdist group, run in a
    row): not idling to the session's end."""
    from devtools.sglang_cpu import cpu_engine_options
    from icrm_sgl.engines import create_engine

    backend = create_engine("sglang", **cpu_engine_options())
    yield backend
    backend.shutdown()
