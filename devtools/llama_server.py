"""llama-cpp-python's OpenAI-compatible server with the bundled SmolLM2 on a free loopback
port (the Q8_0 weights the local engine runs): the hosted engines' real counterpart, for the
tests and the benchmarks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from icrm_sgl.engines.local.requantize import default_weights
from icrm_sgl.engines.retry import poll_until
from icrm_sgl.engines.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def llama_server(threads: int = 1, timeout: float = 120) -> Iterator[str]:
    """The server's ``/v1`` URL while it runs, stopped afterwards. Prompts run on
    ``threads`` too: the server's own default for them is every core, whose threads spin
    against whatever else runs (its verdicts were 10x slower beside the test workers)."""
    port = free_port()
    cmd = [sys.executable, "-m", "devtools.llama_server", "--model", str(default_weights())]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    cmd += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(proc, url, timeout)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_until_up(proc: subprocess.Popen, url: str, timeout: float) -> None:
    """Until ``/models`` answers, on the engines' own polling helper."""

    def probe(seconds_left: float) -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with code {proc.returncode}")
        try:
            return requests.get(f"{url}/models", timeout=1).ok
        except requests.RequestException:
            return False

    def gave_up(_: bool) -> BaseException:
        return RuntimeError(f"llama.cpp server not up within {timeout} s")

    poll_until(probe, bool, timeout, gave_up, interval=0.25)


if __name__ == "__main__":
    # llama-cpp-python's server, loading its model as the local engine does (no AMX buffers).
    from llama_cpp.server.__main__ import main

    from icrm_sgl.engines.local.llama_adapter import llama_without_amx

    llama_without_amx()
    main()
