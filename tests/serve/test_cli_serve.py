"""``icrm-sgl serve`` refuses bad settings with one line, before it listens."""

import socket
import time

import pytest


@pytest.mark.timeout(300)  # in-process: a regression would start listening for good
def test_bad_generation_settings_are_one_line_and_exit_2(run_cli):
    proc = run_cli("serve", "--port", "0", "--max-tokens", "2", "--num-shots", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: max_tokens must be at least 4, got 2"]


def test_a_port_in_use_is_one_line_and_exit_2_before_the_engine_loads(run_cli, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "unused")  # the engine would load: only the port fails
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        proc = run_cli("serve", "--port", port, "--engine", "openai", "--model", "m")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use)"
    )
    assert time.monotonic() - started < 30
