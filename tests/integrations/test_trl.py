"""The training-loop adapters on the real SmolLM2 engine: the pairwise picker, TRL's
pairwise-judge interface (in TRL 1.0, installed beside the project's TRL by the test), and
the reward function's failure rules."""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from icrm_sgl.errors import InputError, MissingDependencyError, VerdictError
from icrm_sgl.integrations.convert import column_keys
from icrm_sgl.integrations.trl import ICRMPairwiseJudge, ICRMReward, PairwisePicker
from tests.conftest import FAST, ROOT

PROMPTS = ["What is 2 + 2?", [{"role": "user", "content": "Say hello in French."}]]
PAIRS = [["4", "2 + 2 is 5."], ["Bonjour !", [{"role": "assistant", "content": "Hola."}]]]


def trl_version() -> tuple[int, ...]:
    return tuple(int(p) for p in importlib.metadata.version("trl").split(".")[:2])


def test_pairwise_picker_returns_an_index_per_prompt(pairwise_model):
    picker = PairwisePicker(pairwise_model, gen=FAST, seed=1)
    picks = picker.judge(PROMPTS, PAIRS)
    assert len(picks) == 2 and set(picks) <= {0, 1}


def test_pairwise_picker_undoes_its_shuffle(pairwise_model):
    """A flipped pair is shown exactly as the reversed pair is, so its pick is the mirror
    of the reversed pair's pick (greedy decoding gives the same verdict)."""
    picker = PairwisePicker(pairwise_model, gen=FAST)
    swapped = picker.judge(PROMPTS[:1], [PAIRS[0][::-1]], shuffle_order=False)
    assert swapped[0] in (0, 1)
    picker._rng.random = lambda: 0.0  # force the flip: A is the second completion
    flipped = picker.judge(PROMPTS[:1], PAIRS[:1], shuffle_order=True)
    assert flipped == [1 - swapped[0]]


def test_pairwise_picker_refuses_other_than_pairs(pairwise_model):
    picker = PairwisePicker(pairwise_model, gen=FAST)
    with pytest.raises(InputError, match="expected 2 completions"):
        picker.judge(["q"], [["a", "b", "c"]])


@pytest.mark.skipif(trl_version() < (1, 1), reason="this TRL has BasePairwiseJudge")
def test_trl_without_a_judge_interface_gets_one_line_naming_the_versions(pairwise_model):
    """TRL 1.1 dropped judges: the module still imports; building the judge says which
    TRL versions have the interface and what to use instead."""
    with pytest.raises(MissingDependencyError) as caught:
        ICRMPairwiseJudge(pairwise_model, gen=FAST)
    message = str(caught.value)
    assert "\n" not in message
    assert "0.10.1 to 1.0.x" in message and "reward_funcs=[ICRMReward" in message


#: The last TRL with a pairwise-judge interface; the project's own TRL (dev extras) has none.
JUDGE_TRL = "1.0.0"

#: Run beside that TRL: the judge subclasses its interface and picks a completion per prompt.
JUDGE_SCRIPT = f"""
import json, trl
from icrm_sgl import ICRM
from icrm_sgl.integrations.trl import _BASE, ICRMPairwiseJudge
model = ICRM(rm_type="pairwise", num_shots=1)
judge = ICRMPairwiseJudge(model, gen={FAST!r}, seed=1)
picks = judge.judge({PROMPTS!r}, {PAIRS!r})
print(json.dumps([trl.__version__, isinstance(judge, _BASE), _BASE.__name__, picks]))
"""


@pytest.fixture
def judge_trl(tmp_path_factory) -> Path:
    """TRL 1.0 installed (no dependencies: it uses the installed torch and transformers)
    into a folder of this test run, to be put first on the import path."""
    folder = tmp_path_factory.mktemp("trl-" + JUDGE_TRL)
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
    subprocess.run([*install, str(folder), f"trl=={JUDGE_TRL}"], check=True, timeout=300)
    return folder


@pytest.mark.slow  # installs TRL 1.0 and imports it (torch); the picker's tests run by default
def test_trl_with_a_judge_interface_gets_a_base_pairwise_judge(judge_trl):
    """In an environment the test builds (TRL 1.0 ahead of the installed TRL), the judge is a
    ``BasePairwiseJudge`` and returns a pick per prompt."""
    path = os.pathsep.join([str(judge_trl), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": path}
    run = subprocess.run(
        [sys.executable, "-c", JUDGE_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    version, is_base, base_name, picks = json.loads(run.stdout.strip().splitlines()[-1])
    assert (version, is_base, base_name) == (JUDGE_TRL, True, "BasePairwiseJudge")
    assert len(picks) == 2 and set(picks) <= {0, 1}


def test_reward_function_needs_a_judge_of_one_reply(pairwise_model):
    with pytest.raises(InputError, match="ICRMReward judges one reply at a time"):
        ICRMReward(pairwise_model)


def test_failed_completions_get_the_failed_reward_or_raise(individual_model):
    bad = [{"role": "system", "content": "only a system turn"}]
    assert ICRMReward(individual_model, gen=FAST)(["q"], [bad]) == [None]
    assert ICRMReward(individual_model, gen=FAST, failed_reward=0.0)(["q"], [bad]) == [0.0]
    with pytest.raises(InputError, match="completion 0"):
        ICRMReward(individual_model, gen=FAST, raise_on_failure=True)(["q"], [bad])
    with pytest.raises(InputError, match="completion 0: completion must be text"):
        ICRMReward(individual_model, gen=FAST, raise_on_failure=True)(["q"], [3.5])


def test_a_verdict_failure_raises_a_verdict_error_when_asked(individual_model):
    from icrm_sgl import ICRM
    from icrm_sgl.engines.local.engine import LocalBackend, LocalOptions

    backend = LocalBackend(LocalOptions(n_ctx=512))
    try:
        model = ICRM(rm_type="individual", num_shots=0, backend=backend)
        with pytest.raises(VerdictError, match=r"completion 0: .*context size"):
            ICRMReward(model, gen=FAST, raise_on_failure=True)(["q"], ["x" * 4000])
    finally:
        backend.shutdown()


def test_mismatched_lengths_are_an_input_error(individual_model):
    with pytest.raises(InputError, match="2 prompts but 1 completions"):
        ICRMReward(individual_model, gen=FAST)(["a", "b"], ["c"])


def test_dataset_columns_become_example_keys_and_trainer_keywords_do_not():
    columns = {
        "reference": ["r0", "r1"],
        "completion_ids": [[1], [2]],
        "trainer_state": object(),
        "log_metric": print,
        "id": ["x", "y"],
        "scalar": 3,
    }
    assert column_keys(columns, 2) == [{"reference": "r0"}, {"reference": "r1"}]


def test_a_column_of_another_length_is_an_error_naming_it():
    """It was dropped silently, so a judge that names the column met a missing key (or,
    were it kept, values meeting the wrong completions)."""
    with pytest.raises(InputError) as info:
        ICRMReward(endpoint="http://127.0.0.1:9")(["a", "b"], ["c", "d"], reference=["r0"])
    assert str(info.value) == "column 'reference' has 1 values for 2 completions"


REFERENCE_RUBRIC = ROOT / "examples" / "judges" / "reference_correct.toml"


def test_reward_function_takes_your_own_judge_in_process(local_backend):
    """``judge=`` (a rubric path) judges in this process; dataset columns give it the
    reference. It used to be refused ("give rm_type or judge, not both")."""
    reward = ICRMReward(judge=REFERENCE_RUBRIC, num_shots=0, backend=local_backend, gen=FAST)
    assert reward._judging.judge.name == "reference_correct"
    values = reward(["2 + 2?", "2 + 2?"], ["4", "5"], reference=["4", "4"])
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values)
    assert reward(["2 + 2?"], ["4"]) == [None]  # no reference column: a failure, not a raise
    reward.raise_on_failure = True
    with pytest.raises(InputError, match=r"completion 0: missing .reference.*dataset columns"):
        reward(["2 + 2?"], ["4"])


def test_reward_function_takes_an_icrm_of_your_judge_and_no_rm_type(local_backend):
    from icrm_sgl import ICRM

    model = ICRM(judge=REFERENCE_RUBRIC, num_shots=0, backend=local_backend)
    values = ICRMReward(model, gen=FAST)(["2 + 2?"], ["4"], reference=["4"])
    assert 0.0 <= values[0] <= 1.0  # it used to say "needs a individual ICRM"
    plain = ICRMReward(rm_type=None, num_shots=0, backend=local_backend, gen=FAST)
    assert plain._judging.judge.name == "individual"  # it used to be a raw TypeError


def test_reward_function_refuses_a_judge_of_two_replies_before_loading(tmp_path):
    with pytest.raises(InputError, match="ICRMReward judges one reply at a time"):
        ICRMReward(judge="pairwise", model_name=str(tmp_path / "absent.gguf"))
