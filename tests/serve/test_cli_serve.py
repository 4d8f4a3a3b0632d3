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


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["--rm-type", "individual"], "judge individual judges one"),
        (
            ["--judge", "examples/judges/reference_correct.toml"],
            "judge reference_correct judges one",
        ),
        (["--panel", "PANEL"], "this panel judges one"),
    ],
)
def test_both_orders_without_a_judge_of_two_replies_is_refused_at_start(
    run_cli, tmp_path, args, refusal
):
    panel = tmp_path / "panel.toml"
    panel.write_text('[[members]]\njudge = "individual"\n[[members]]\njudge = "individual"\n')
    args = [str(panel) if arg == "PANEL" else arg for arg in args]
    started = time.monotonic()
    proc = run_cli("serve", "--port", "0", "--both-orders", *args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: --both-orders compares two replies: {refusal}"
    assert time.monotonic() - started < 30  # before the engine loads
