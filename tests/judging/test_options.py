"""``ICRM``'s settings groups: each validates its own values in one line, the flat
constructor and ``ICRM.from_settings`` make the same judge, and the engine's factory gets
its group and nothing of the judging or the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from icrm_sgl import ICRM
from icrm_sgl.engines.local import engine as local
from icrm_sgl.errors import InputError
from icrm_sgl.judging.settings import (
    CacheSettings,
    EndpointSettings,
    EngineSettings,
    JudgingSettings,
    Settings,
)
from tests.conftest import EXAMPLES, FAST


@pytest.mark.parametrize(
    ("group", "given", "message"),
    [
        (JudgingSettings, {"num_shots": "3"}, "num_shots must be a whole number ≥ 0, got '3'"),
        (JudgingSettings, {"num_shots": 1.5}, "num_shots must be a whole number ≥ 0, got 1.5"),
        (JudgingSettings, {"num_shots": True}, "num_shots must be a whole number ≥ 0, got True"),
        (JudgingSettings, {"num_shots": -1}, "num_shots must be a whole number ≥ 0, got -1"),
        (
            JudgingSettings,
            {"shot_sampling_mode": "best"},
            "unknown shot sampling mode 'best': expected one of ('fixed', 'random', 'balanced')",
        ),
        (JudgingSettings, {"seed": "7"}, "seed: input should be a valid integer, got '7'"),
        (
            JudgingSettings,
            {"field_tokens": 0},
            "field_tokens: input should be greater than or equal to 1, got 0",
        ),
        (
            JudgingSettings,
            {"verbose": "yes"},
            "verbose: input should be a valid boolean, got 'yes'",
        ),
        (
            JudgingSettings,
            {"rm_type": "pairwise", "judge": "r.toml"},
            "give rm_type or judge, not both",
        ),
        (
            JudgingSettings,
            {"judge": "r.toml", "template_path": "t.txt"},
            "template_path is for the built-in modes: a judge has its own templates",
        ),
        (JudgingSettings, {"shots": 3}, "JudgingSettings has no setting 'shots'"),
        (
            EngineSettings,
            {"num_workers": 0},
            "num_workers: input should be greater than or equal to 1, got 0",
        ),
        (
            EngineSettings,
            {"options": {"seed": 1}},
            "seed is an engine setting of its own, not one of the engine's options",
        ),
        (CacheSettings, {"use_cache": 1}, "use_cache: input should be a valid boolean, got 1"),
        (
            EndpointSettings,
            {"endpoint": "http://h:1", "batch_size": "8"},
            "batch_size: input should be a valid integer, got '8'",
        ),
        (
            EndpointSettings,
            {"endpoint": "http://h:1", "timeout": float("inf")},
            "timeout: input should be a finite number, got inf",
        ),
    ],
)
def test_each_group_refuses_a_bad_value_in_one_line(group, given, message):
    with pytest.raises(InputError) as info:
        group(**given)
    assert str(info.value) == message


def test_the_flat_keywords_land_in_the_group_that_owns_them():
    flat = {"engine": "sglang", "seed": 7, "num_shots": 1, "use_cache": True, "n_ctx": 64}
    settings = Settings.from_flat({**flat, "num_workers": 1, "endpoint": "http://h:1"})
    assert settings.engine == EngineSettings(
        name="sglang", seed=7, num_workers=1, options={"n_ctx": 64, "endpoint": "http://h:1"}
    )
    assert settings.judging == JudgingSettings(num_shots=1, seed=7)
    assert settings.cache == CacheSettings(use_cache=True)
    # the original's neutral launch values never reach an engine
    assert settings.engine.factory_options() == {
        "model_name": None,
        "seed": 7,
        "n_ctx": 64,
        "endpoint": "http://h:1",
    }


def test_flat_and_grouped_constructors_judge_alike(local_backend):
    judging = {"num_shots": 2, "shot_sampling_mode": "random", "seed": 7, "field_tokens": 64}
    flat = ICRM(rm_type="pairwise", backend=local_backend, **judging)
    grouped = ICRM.from_settings(
        engine=EngineSettings(seed=7),  # the flat seed seeds the engine too
        judging=JudgingSettings(rm_type="pairwise", **judging),
        backend=local_backend,
    )
    assert grouped.settings == flat.settings
    assert grouped.fingerprint(**FAST) == flat.fingerprint(**FAST)
    assert [s["id"] for s in grouped.default_shots] == [s["id"] for s in flat.default_shots]


def test_the_engine_factory_gets_only_the_engine_group(monkeypatch, tmp_path):
    """A registered factory (building the real local engine) sees the model, seed and its
    own options: not the shots, the cache, or the neutral launch values."""
    import icrm_sgl.engines

    received: list[dict] = []

    def recording(**options):
        received.append(options)
        return local.create(**options)

    monkeypatch.setitem(icrm_sgl.engines._ENGINES, "recording", recording)
    cache_dir = str(tmp_path / "cache")
    flat = ICRM(
        engine="recording",
        seed=5,
        num_shots=0,
        concurrency=2,
        use_cache=True,
        cache_dir=cache_dir,
        num_workers=1,
        n_ctx=2048,
    )
    grouped = ICRM.from_settings(
        engine=EngineSettings(name="recording", seed=5, num_workers=1, options={"n_ctx": 2048}),
        judging=JudgingSettings(num_shots=0, concurrency=2, seed=5),
        cache=CacheSettings(use_cache=True, cache_dir=cache_dir),
    )
    with flat, grouped:
        assert received == [{"model_name": None, "seed": 5, "n_ctx": 2048}] * 2
        assert grouped.fingerprint() == flat.fingerprint()
        assert flat.fingerprint()["engine_identity"]["options"]["seed"] == 5
        example = json.loads((EXAMPLES / "test_individual.json").read_text())
        first = flat.judge(example, **FAST)
        again = grouped.judge(example, **FAST)
    assert again.meta["from_cache"] is True and again.verdict == first.verdict


def test_a_bad_group_value_fails_before_the_engine_is_built(monkeypatch):
    import icrm_sgl.engines

    def never(**options):
        raise AssertionError("the engine was built")

    monkeypatch.setitem(icrm_sgl.engines._ENGINES, "never", never)
    with pytest.raises(InputError, match="num_shots must be a whole number"):
        ICRM(engine="never", num_shots="2")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_seq": "4"}, "engine 'local': bad option n_seq: Input should be a valid integer"),
        ({"n_ctx": 4096.0}, "engine 'local': bad option n_ctx: Input should be a valid integer"),
        (
            {"no_repeat_ngram": True},
            "engine 'local': bad option no_repeat_ngram: Input should be a valid integer",
        ),
    ],
)
def test_engine_options_are_as_strict_as_the_settings(options, message):
    """``n_seq="4"`` was read as 4 while ``num_shots="3"`` was refused: both are refused,
    before a model loads."""
    with pytest.raises(InputError) as info:
        ICRM(**options)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_path_model_reaches_the_engine_as_text():
    """``EngineSettings`` takes a ``Path``; engines' options take the model as text."""
    settings = EngineSettings(model_name=Path("models/m.gguf"))
    assert settings.factory_options()["model_name"] == "models/m.gguf"


def test_an_endpoint_url_gets_its_reward_path_once():
    for url in ("http://h:1", "http://h:1/", "http://h:1/get_reward"):
        assert EndpointSettings(endpoint=url).endpoint == "http://h:1/get_reward"


def test_an_endpoint_scheme_is_read_in_any_case():
    assert EndpointSettings(endpoint="HTTPS://h:1/").endpoint == "https://h:1/get_reward"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:notaport", "has a port that is not a number from 1 to 65535"),
        ("http://127.0.0.1:99999", "has a port that is not a number from 1 to 65535"),
        ("http://127.0.0.1:0", "has a port that is not a number from 1 to 65535"),
        ("http://:8000", "has no host"),
        ("http:///get_reward", "has no host"),
        ("http://h:1/get_reward?x=1", "has a query or fragment"),
        ("http://h:1/#top", "has a query or fragment"),
        ("http://h :1", "has spaces or control characters"),
        ("http://h:1/\n", "has spaces or control characters"),
    ],
)
def test_an_endpoint_that_names_no_server_is_one_line(url, problem):
    """``:notaport`` and ``:99999`` escaped as a raw ValueError from ``urlsplit``."""
    with pytest.raises(InputError) as info:
        EndpointSettings(endpoint=url)
    assert str(info.value).startswith(f"endpoint {url!r} {problem}")


def test_an_endpoint_with_a_password_is_refused_without_showing_it():
    with pytest.raises(InputError) as info:
        EndpointSettings(endpoint="http://me:s3cret@h:1")
    assert (
        str(info.value) == "endpoint 'http://h:1' has a user or password (give the key as api_key)"
    )


def _engine_options(name: str) -> type:
    """An engine's options model, imported when a test uses it."""
    if name == "sglang":
        from icrm_sgl.engines.sglang.options import SglangOptions

        return SglangOptions
    if name == "vllm":
        from icrm_sgl.engines.hosted.vllm import VllmOptions

        return VllmOptions
    if name == "openai":
        from icrm_sgl.engines.hosted.openai_compat import OpenAIOptions

        return OpenAIOptions
    if name == "claude":
        from icrm_sgl.engines.hosted.base import HostedOptions

        return HostedOptions
    return local.LocalOptions


def _plain(value):
    """A secret's text, else the value."""
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


@pytest.mark.parametrize(
    ("engine", "given", "taken"),
    [
        pytest.param("local", {"chat_template": Path("chatml")}, {"chat_template": "chatml"}),
        pytest.param(
            "sglang",
            {
                "model_name": "m",
                "log_path": Path("/tmp/s.log"),
                "python": Path("/usr/bin/python3"),
                "chat_template": Path("chatml"),
            },
            {"log_path": "/tmp/s.log", "python": "/usr/bin/python3", "chat_template": "chatml"},
            id="sglang-paths",
        ),
        pytest.param(
            "sglang",
            {"model_name": "m", "server_args": ("--x", Path("/m")), "router_args": ("--y",)},
            {"server_args": ["--x", "/m"], "router_args": ["--y"]},
            id="sglang-tuples",
        ),
        pytest.param(
            "sglang",
            {"model_name": "m", "router_sticky": 0, "launch_timeout": 60},
            {"router_sticky": False, "launch_timeout": 60.0},
            id="sglang-switch-0",
        ),
        pytest.param("sglang", {"endpoint": "http://h:1", "api_key": 12345}, {"api_key": "12345"}),
        pytest.param(
            "vllm",
            {
                "model_name": "m",
                "log_path": Path("/tmp/v.log"),
                "server_args": ("--x",),
                "executable": Path("/opt/vllm"),
            },
            {"log_path": "/tmp/v.log", "server_args": ["--x"], "executable": "/opt/vllm"},
        ),
        pytest.param(
            "openai",
            {"logprobs": 1, "timeout": 30, "api_key": 12345},
            {"logprobs": True, "timeout": 30.0, "api_key": "12345"},
        ),
        pytest.param("claude", {"api_key": 12345}, {"api_key": "12345"}),
    ],
)
def test_engine_options_take_values_of_the_right_kind_in_their_usual_forms(engine, given, taken):
    """A ``Path`` where text goes, a tuple where a list goes, 0/1 for a switch, digits for
    text: strict types refused all of these."""
    options = _engine_options(engine)(**given)
    assert {key: _plain(getattr(options, key)) for key in taken} == taken


@pytest.mark.parametrize(
    ("engine", "given", "field"),
    [
        ("local", {"n_seq": "4"}, "n_seq"),
        ("local", {"n_ctx": 4096.0}, "n_ctx"),
        ("local", {"no_repeat_ngram": True}, "no_repeat_ngram"),
        ("local", {"chat_template": 1.5}, "chat_template"),
        ("sglang", {"model_name": "m", "router_sticky": 2}, "router_sticky"),
        ("sglang", {"model_name": "m", "router_sticky": "yes"}, "router_sticky"),
        ("sglang", {"model_name": "m", "num_workers": "2"}, "num_workers"),
        ("sglang", {"model_name": "m", "server_args": 5}, "server_args"),
        ("sglang", {"model_name": "m", "launch_timeout": "60"}, "launch_timeout"),
        ("vllm", {"model_name": "m", "num_workers": 2.0}, "num_workers"),
        ("openai", {"logprobs": "true"}, "logprobs"),
        ("openai", {"max_tokens": "512"}, "max_tokens"),
        ("claude", {"api_key": True}, "api_key"),
    ],
)
def test_engine_options_still_refuse_text_for_numbers_and_other_kinds(engine, given, field):
    with pytest.raises(ValidationError) as info:
        _engine_options(engine)(**given)
    assert [error["loc"][0] for error in info.value.errors()] == [field]
