"""The Python API misused: wrong types, out-of-range options, a closed model.

Every case is an ``IcrmError`` with a message, never a ``TypeError``/``AttributeError``
from inside the engine, and never a crashed interpreter.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from icrm_sgl.errors import EngineError, InputError
from tests.conftest import FAST

GOOD = {
    "conversation_A": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}],
    "conversation_B": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "No"}],
}


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda m: m.judge(None), "expected an object"),
        (lambda m: m.judge("s"), "got str"),
        (lambda m: m.judge([GOOD]), "got list"),
        (lambda m: m.judge(GOOD, max_tokens="40"), "max_tokens"),
        (lambda m: m.judge(GOOD, max_tokens=True), "max_tokens"),
        (lambda m: m.judge(GOOD, temperature=-1), "temperature"),
        (lambda m: m.judge(GOOD, temperature=float("nan")), "temperature"),
        (lambda m: m.judge(GOOD, top_p=2.0), "top_p"),
        (lambda m: m.judge(GOOD, top_k="5"), "top_k"),
        (lambda m: m.judge(GOOD, nonsense=1), "unknown generation option"),
        (lambda m: list(m.judge_batch(5)), "got int"),
        (lambda m: list(m.judge_batch("abc")), "got str"),
        (lambda m: list(m.judge_batch(GOOD)), "use judge()"),
        (lambda m: list(m.judge_batch([GOOD], top_p=-0.1)), "top_p"),
        (lambda m: m(conversation_A=GOOD["conversation_A"], conversation_B=None), "conversation_B"),
    ],
)
def test_api_misuse_is_an_input_error(pairwise_model, call, message):
    with pytest.raises(InputError, match=message):
        call(pairwise_model)


@pytest.mark.parametrize(
    "option,bad,good",
    [
        # The command line's bounds: --max-tokens IntRange(1), --temperature FloatRange(0),
        # --top-p FloatRange(0, 1).
        ("max_tokens", 0, 1),
        ("temperature", -0.01, 0.0),
        ("top_p", 1.01, 1.0),
        ("top_p", -0.01, 0.0),
    ],
)
def test_api_bounds_match_the_cli(option, bad, good):
    from icrm_sgl.plumbing.arguments import check_generation

    with pytest.raises(InputError, match=option):
        check_generation({option: bad})
    assert check_generation({option: good})[option] == good


def test_judging_with_a_closed_model_raises_instead_of_aborting(local_backend):
    from icrm_sgl import ICRM

    model = ICRM(rm_type="pairwise", num_shots=1, backend=local_backend)
    model.close()
    with pytest.raises(EngineError, match="closed"):
        model.judge(GOOD, **FAST)
    with pytest.raises(EngineError, match="closed"):
        list(model.judge_batch([GOOD], **FAST))


def test_a_closed_owned_model_does_not_kill_the_interpreter():
    """llama.cpp aborted the process (exit 134) when a freed model was used."""
    script = textwrap.dedent(
        """
        from icrm_sgl import ICRM, EngineError
        from icrm_sgl.engines.local.engine import LocalBackend
        conv = lambda text: [{"role": "user", "content": "Hi"},
                             {"role": "assistant", "content": text}]
        m = ICRM(rm_type="pairwise", num_shots=0)
        m.close()
        m.close()
        try:
            m(conversation_A=conv("Hey"), conversation_B=conv("No"), max_tokens=10)
        except EngineError as exc:
            print("model:", exc)
        shared = LocalBackend()
        shared.shutdown()
        other = ICRM(rm_type="pairwise", num_shots=0, backend=shared)
        result, = other.judge_batch([{"conversation_A": conv("a"), "conversation_B": conv("b")}],
                                    max_tokens=10)
        print("backend:", result.error)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "model: this ICRM is closed; create a new one to judge again"
    assert lines[1].startswith("backend: engine error: model ") and "is closed" in lines[1]


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.judge_batch(GOOD),
        lambda m: m.judge_batch(5),
        lambda m: m.judge_batch([GOOD], top_p=-0.1),
    ],
)
def test_judge_batch_checks_its_arguments_at_the_call(pairwise_model, call):
    """Not only when the results are first read: the mistake is on the line that made it."""
    with pytest.raises(InputError):
        call(pairwise_model)


@pytest.mark.parametrize("bad", ["3", 1.5, True, -1, None])
def test_num_shots_must_be_a_whole_number(local_backend, bad):
    from icrm_sgl import ICRM

    with pytest.raises(InputError, match=rf"num_shots must be a whole number ≥ 0, got {bad!r}"):
        ICRM(rm_type="pairwise", backend=local_backend, num_shots=bad)


def test_the_seeds_launch_defaults_are_accepted_where_they_change_nothing(local_backend):
    """``num_workers=1, num_gpu_per_worker=1`` are the original's documented defaults."""
    from icrm_sgl import ICRM

    with ICRM(rm_type="pairwise", num_workers=1, num_gpu_per_worker=1, num_shots=0) as model:
        assert model.judge(GOOD, **FAST).ok
    hosted = ICRM(
        rm_type="pairwise",
        engine="openai",
        model_name="m",
        base_url="http://127.0.0.1:9/v1",
        num_workers=1,
        num_gpu_per_worker=1,
    )
    hosted.close()


@pytest.mark.parametrize(
    ("group", "kind"),
    [("engine", "EngineSettings"), ("judging", "JudgingSettings"), ("cache", "CacheSettings")],
)
def test_from_settings_takes_settings_groups_not_dicts(group, kind):
    """A dict where a group belongs was an AttributeError from deep inside."""
    from icrm_sgl import ICRM

    with pytest.raises(InputError) as info:
        ICRM.from_settings(**{group: {"name": "local"}})
    assert str(info.value) == (
        f"{group} must be an icrm_sgl.judging.settings.{kind} (or None), got dict; "
        f"{kind}(**values) builds one"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"endpoint": 5}, "endpoint: input should be a valid string, got 5"),
        (
            {"endpoint": "127.0.0.1:8000"},
            "endpoint must be an http:// or https:// URL, got '127.0.0.1:8000'",
        ),
        (
            {"endpoint": "http://127.0.0.1:9", "timeout": "4"},
            "timeout: input should be a valid number, got '4'",
        ),
        (
            {"endpoint": "http://127.0.0.1:9", "batch_size": 0},
            "batch_size: input should be greater than or equal to 1, got 0",
        ),
        (
            {"endpoint": "http://127.0.0.1:9", "failed_reward": "0"},
            "failed_reward must be a finite number or None, got '0'",
        ),
        (
            {"endpoint": "http://127.0.0.1:9", "failed_reward": float("nan")},
            "failed_reward must be a finite number or None, got nan",
        ),
        (
            {"endpoint": "http://127.0.0.1:9", "failed_reward": -float("inf")},
            "failed_reward must be a finite number or None, got -inf",
        ),
        (
            {"endpoint": "http://127.0.0.1:9", "failed_reward": True},
            "failed_reward must be a finite number or None, got True",
        ),
        ({"batch_size": 8}, "batch_size: only with endpoint=URL (a served judge)"),
        (
            {"endpoint": "http://127.0.0.1:notaport"},
            "endpoint 'http://127.0.0.1:notaport' has a port that is not a number from 1 to 65535",
        ),
        (
            {"model": object(), "api_key": "k", "n_ctx": 512},
            "ICRMReward(model) judges with that ICRM and its settings; drop api_key, n_ctx "
            "(or pass them instead of the model)",
        ),
    ],
)
def test_reward_function_settings_are_refused_in_one_line(options, message):
    """``endpoint=5`` was an AttributeError; ``batch_size`` without an endpoint was ignored;
    a NaN failed_reward would poison a training step's rewards."""
    from icrm_sgl.integrations.trl import ICRMReward

    with pytest.raises(InputError) as info:
        ICRMReward(**options)
    assert str(info.value) == message


def test_a_hosted_engines_key_and_timeout_reach_the_engine(monkeypatch):
    """``api_key`` and ``timeout`` are a hosted engine's own options too: without an
    endpoint they go to the engine (they were refused as "only with endpoint=URL")."""
    import icrm_sgl.engines
    from icrm_sgl.integrations.trl import ICRMReward

    received: list[dict] = []

    def recording(**options):
        received.append(options)
        raise InputError("recorded")

    monkeypatch.setitem(icrm_sgl.engines._ENGINES, "recording", recording)
    with pytest.raises(InputError, match=r"^recorded$"):
        ICRMReward(engine="recording", model_name="m", api_key="sk-1", timeout=7)
    assert received == [{"model_name": "m", "seed": 42, "api_key": "sk-1", "timeout": 7}]


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (0, 0.0),
        (-1, -1.0),
        (0.5, 0.5),
        (None, None),
        pytest.param(np.float32(0.5), 0.5, id="numpy-float32"),
        pytest.param(np.int64(-2), -2.0, id="numpy-int64"),
    ],
)
def test_failed_reward_takes_any_finite_real_number(given, kept):
    """A numpy number (a config value read with numpy) is a number too: kept as a float."""
    from icrm_sgl.integrations.trl import ICRMReward

    reward = ICRMReward(endpoint="http://127.0.0.1:9", failed_reward=given)
    assert reward.failed_reward == kept
    assert kept is None or type(reward.failed_reward) is float


@pytest.mark.parametrize(
    ("prompts", "completions", "message"),
    [
        (None, ["a"], "prompts must be a list, got NoneType"),
        ("q", ["a"], "prompts must be a list, got str"),
        (["q"], 5, "completions must be a list, got int"),
    ],
)
def test_reward_function_calls_take_lists(prompts, completions, message):
    """``reward(None, [...])`` was a TypeError; checked before any request is sent."""
    from icrm_sgl.integrations.trl import ICRMReward

    with pytest.raises(InputError) as info:
        ICRMReward(endpoint="http://127.0.0.1:9")(prompts, completions)
    assert str(info.value) == message


def test_pairwise_picker_calls_take_lists(pairwise_model):
    from icrm_sgl.integrations.trl import PairwisePicker

    picker = PairwisePicker(pairwise_model, gen=FAST)
    with pytest.raises(InputError, match=r"^prompts must be a list, got NoneType$"):
        picker.judge(None, [["a", "b"]])
    with pytest.raises(InputError, match=r"^completions\[0\] must be a list, got str$"):
        picker.judge(["q"], ["ab"])
