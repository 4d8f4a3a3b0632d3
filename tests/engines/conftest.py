"""Real servers started once per session: a llama.cpp OpenAI-compatible server
(llama-cpp-python's) with SmolLM2 for the hosted-engine tests, and the sglang CPU server
for the ``sglang_server`` tier (its tests and the router tests that put it behind smg)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import requests

from icrm_sgl.engines.retry import poll_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server():
    """The server's base URL (``http://127.0.0.1:PORT/v1``)."""
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")
    from icrm_sgl.engines.local import default_model_path

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path())]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(proc, base_url, timeout=60)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_until_up(proc: subprocess.Popen, base_url: str, timeout: float) -> None:
    """Until ``/models`` answers, on the engines' own polling helper."""

    def probe(seconds_left: float) -> bool:
        if proc.poll() is not None:
            pytest.fail(f"llama.cpp server exited with code {proc.returncode}")
        try:
            return requests.get(f"{base_url}/models", timeout=1).ok
        except requests.RequestException:
            return False

    def gave_up(_: bool) -> BaseException:
        return pytest.fail.Exception(f"llama.cpp server not up within {timeout} s")

    poll_until(probe, bool, timeout, gave_up, interval=0.25)


@pytest.fixture(scope="session")
def sglang_backend():
    """A real sglang server launched by the engine, stopped with its process group."""
    from devtools.sglang_cpu import cpu_engine_options
    from icrm_sgl.engines import create_engine

    backend = create_engine("sglang", **cpu_engine_options())
    yield backend
    backend.shutdown()
