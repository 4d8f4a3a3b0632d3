"""``-E KEY=VALUE`` takes the engine's own options: a setting with a flag of its own, or one
of the judging, the cache or a call's generation, is refused in one line (exit 2) before a
model loads, instead of being passed on and silently ignored."""

from __future__ import annotations

import pytest

from icrm_sgl.cli.options import engine_kwargs
from tests.conftest import EXAMPLES


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("rm_type=triplewise", "-E rm_type: not an engine option; use --rm-type"),
        ("judge=rubric.toml", "-E judge: not an engine option; use --judge"),
        ("num_shots=5", "-E num_shots: not an engine option; use --num-shots"),
        ("seed=7", "-E seed: not an engine option; use --seed"),
        ("model_name=m.gguf", "-E model_name: not an engine option; use --model"),
        ("base_url=http://h/v1", "-E base_url: not an engine option; use --base-url"),
        ("use_cache=true", "-E use_cache: not an engine option; use --use-cache"),
        (
            "field_tokens=64",
            "-E field_tokens: a judging setting, not an engine option (-E takes the "
            "engine's own options, e.g. -E n_ctx=4096)",
        ),
        (
            "top_k=5",
            "-E top_k: a generation setting, not an engine option (-E takes the "
            "engine's own options, e.g. -E n_ctx=4096)",
        ),
    ],
)
def test_a_key_that_is_not_the_engines_is_one_line_and_exit_2(run_cli, item, message):
    proc = run_cli("score", EXAMPLES / "test_individual.json", "-E", item)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == f"error: {message}\n"


def test_the_engines_options_and_unflagged_launch_settings_pass():
    given = ("n_ctx=512", " n_threads = 2", "num_workers=2", "dtype=bfloat16", "chat_template=x")
    assert engine_kwargs("http://h:1", given) == {
        "endpoint": "http://h:1",
        "n_ctx": 512,
        "n_threads": 2,
        "num_workers": 2,
        "dtype": "bfloat16",
        "chat_template": "x",
    }


def _options_model(engine: str) -> type:
    """The engine's options model, imported when a test uses it."""
    if engine == "sglang":
        from icrm_sgl.engines.sglang.options import SglangOptions

        return SglangOptions
    if engine == "vllm":
        from icrm_sgl.engines.hosted.vllm import VllmOptions

        return VllmOptions
    if engine == "openai":
        from icrm_sgl.engines.hosted.openai_compat import OpenAIOptions

        return OpenAIOptions
    if engine == "claude":
        from icrm_sgl.engines.hosted.base import HostedOptions

        return HostedOptions
    from icrm_sgl.engines.local.engine import LocalOptions

    return LocalOptions


@pytest.mark.parametrize(
    ("engine", "items", "taken"),
    [
        (
            "local",
            ("n_ctx=4096", "n_seq=2", "chat_template=chatml", "disk_cache_mib=0"),
            {"n_ctx": 4096, "n_seq": 2, "chat_template": "chatml", "disk_cache_mib": 0},
        ),
        ("sglang", ("router_sticky=0",), {"router_sticky": False}),
        ("sglang", ("router_sticky=1",), {"router_sticky": True}),
        ("sglang", ("router_sticky=FALSE",), {"router_sticky": False}),
        ("sglang", ("api_key=12345",), {"api_key": "12345"}),
        (
            "sglang",
            ("log_path=/tmp/s.log", "python=/usr/bin/python3", "chat_template=chatml"),
            {"log_path": "/tmp/s.log", "python": "/usr/bin/python3", "chat_template": "chatml"},
        ),
        (
            "sglang",
            ("server_args=--mem-fraction-static 0.8", "router_args=--x", "server_env=A=1,B=2"),
            {
                "server_args": ["--mem-fraction-static", "0.8"],
                "router_args": ["--x"],
                "server_env": {"A": "1", "B": "2"},
            },
        ),
        (
            "sglang",
            ("launch_timeout=600", "busy_timeout=0.5", "max_attempts=3"),
            {"launch_timeout": 600.0, "busy_timeout": 0.5, "max_attempts": 3},
        ),
        (
            "vllm",
            ("executable=/opt/vllm", "log_path=/tmp/v.log", "server_args=--x", "launch_timeout=60"),
            {
                "executable": "/opt/vllm",
                "log_path": "/tmp/v.log",
                "server_args": ["--x"],
                "launch_timeout": 60.0,
            },
        ),
        (
            "openai",
            ("api_key=12345", "logprobs=1", "timeout=30", "completion_schema=none"),
            {"api_key": "12345", "logprobs": True, "timeout": 30.0, "completion_schema": "none"},
        ),
        ("openai", ("logprobs=0", "max_retries=0"), {"logprobs": False, "max_retries": 0}),
        (
            "claude",
            ("api_key=12345", "timeout=30", "backoff_base=0"),
            {"api_key": "12345", "timeout": 30.0, "backoff_base": 0.0},
        ),
    ],
)
def test_what_the_command_line_reads_an_option_as_is_taken(engine, items, taken):
    """``-E`` reads ``0`` / ``1`` and digits as numbers: a switch or a text option (an
    API key of digits) takes them; the engine's strict types refused them."""
    kwargs = engine_kwargs(None, items)
    model = {"model_name": "m"} if engine in ("sglang", "vllm") else {}
    options = _options_model(engine)(**model, **kwargs)
    got = {key: getattr(options, key) for key in taken}
    got = {k: v.get_secret_value() if hasattr(v, "get_secret_value") else v for k, v in got.items()}
    assert got == taken
