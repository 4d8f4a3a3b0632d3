"""A hosted engine's missing API key or unreachable server is one line, exit 2, said
before the command line imports sglang and the client libraries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from icrm_sgl.engines.hosted.preflight import preflight
from icrm_sgl.errors import EngineError, InputError

EXAMPLE = str(Path(__file__).resolve().parents[3] / "examples" / "test_pairwise.json")
KEYS = ("OPENAI_API_KEY", "TOGETHER_API_KEY", "MISTRAL_API_KEY", "ANTHROPIC_API_KEY")


@pytest.fixture(autouse=True)
def no_keys_no_proxy(monkeypatch):
    for name in (*KEYS, "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize(
    ("engine", "variable"),
    [
        ("openai", "OPENAI_API_KEY"),
        ("together", "TOGETHER_API_KEY"),
        ("mistral", "MISTRAL_API_KEY"),
        ("claude", "ANTHROPIC_API_KEY"),
    ],
)
def test_a_provider_without_its_key_is_refused(engine, variable, monkeypatch):
    with pytest.raises(InputError, match=f"{engine} engine needs an API key: set {variable}"):
        preflight(engine, "m", {})
    preflight(engine, "m", {"api_key": "k"})  # passed as an option
    monkeypatch.setenv(variable, "k")
    preflight(engine, "m", {})


def test_a_server_of_your_own_needs_no_key_but_must_answer():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        for engine in ("openai", "claude", "vllm"):
            preflight(engine, None, {"base_url": url})
            preflight(engine, None, {"endpoint": url})
    url = dead_url()
    with pytest.raises(
        EngineError, match=r"openai engine \(http://127\.0\.0\.1:\d+/v1\): cannot reach"
    ):
        preflight("openai", None, {"base_url": url})


def test_vllm_is_checked_only_where_it_connects():
    preflight("vllm", "Qwen/Qwen2.5-7B", {})  # a model and no endpoint: the engine launches it
    with pytest.raises(EngineError, match="cannot reach"):
        preflight("vllm", "m", {"endpoint": dead_url()})


def test_other_engines_and_proxied_urls_pass_unchecked(monkeypatch):
    preflight("local", None, {})
    preflight("sglang", None, {"endpoint": dead_url()})  # the engine checks its own server
    preflight("mine", None, {"base_url": dead_url()})  # a registered engine
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    preflight("openai", None, {"base_url": dead_url()})  # the proxy carries the requests


def test_a_url_that_is_not_http_is_one_line():
    with pytest.raises(InputError, match="not an http"):
        preflight("openai", None, {"base_url": "localhost:8080"})


def test_the_command_line_says_it_before_importing_sglang():
    """Both problems through the real entry point in a fresh interpreter: one line each,
    exit 2, and sglang never imported (it costs 15-20 s on a busy machine)."""
    script = textwrap.dedent(
        """
        import sys
        from icrm_sgl.cli import main

        for args in sys.argv[1:]:
            sys.argv = ["icrm-sgl", "score", *args.split()]
            try:
                main()
            except SystemExit as exc:
                print("exit", exc.code)
        print("sglang imported:", bool({"sglang.lang", "torch"} & set(sys.modules)))
        """
    )
    calls = [
        f"{EXAMPLE} --engine openai --model m",
        f"{EXAMPLE} --engine claude --base-url {dead_url()}",
    ]
    done = subprocess.run(
        [sys.executable, "-c", script, *calls],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k not in KEYS},
    )
    assert done.stdout.splitlines() == ["exit 2", "exit 2", "sglang imported: False"], done.stderr
    errors = done.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("error: openai engine needs an API key: set OPENAI_API_KEY")
    assert "error: claude engine (http://127.0.0.1:" in errors[1]
    assert errors[1].endswith("cannot reach the server (Connection refused)")
