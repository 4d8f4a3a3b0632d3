"""``ICRM``'s settings groups: each validates its own values in one line, the flat
constructor and ``ICRM.from_settings`` make the same judge, and the engine's factory gets
its group and nothing of the judging or the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icrm_sgl import ICRM
from icrm_sgl.engines import local
from icrm_sgl.errors import InputError
from icrm_sgl.options import (
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
