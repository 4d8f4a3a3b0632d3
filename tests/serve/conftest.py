"""A real ``icrm-sgl serve`` process on 127.0.0.1 (local engine, packaged SmolLM2, tiny
budgets), started once for the endpoint tests."""

from __future__ import annotations

import os
import sys

import pytest

from icrm_sgl.engines.server_process import ServerProcess, free_port, serve

API_KEY = "test-key-3f9a"
#: Small limits so that 413 and 429 are reachable with a few examples.
LIMITS = ["--max-queue", "3", "--max-batch", "1", "--max-body-bytes", "8192"]
#: On a contended 2-core machine one verdict can take a minute or more: long deadlines.
LIMITS += ["--deadline", "900"]


def launch(*args: str, api_key: str | None = None) -> ServerProcess:
    """Start the server in its own process group and wait until /health answers 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "icrm_sgl.cli", "serve", "--port", str(port)]
    cmd += ["--num-shots", "1", "--max-tokens", "40", *args]
    env = {k: v for k, v in os.environ.items() if k != "ICRM_API_KEY"}
    if api_key:
        env["ICRM_API_KEY"] = api_key
    return serve(cmd, port, timeout=300, name="icrm-sgl serve", env=env)


@pytest.fixture(scope="session")
def server():
    """The running server (``.url``, ``.log_path``), with a bearer key and small limits."""
    proc = launch(*LIMITS, api_key=API_KEY)
    yield proc
    proc.stop(grace=60)


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {API_KEY}"}
