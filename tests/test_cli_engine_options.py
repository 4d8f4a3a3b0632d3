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
