"""The training-loop adapters on the real SmolLM2 engine."""

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.integrations.trl import ICRMPairwiseJudge, ICRMReward
from tests.conftest import FAST

PROMPTS = ["What is 2 + 2?", [{"role": "user", "content": "Say hello in French."}]]
PAIRS = [["4", "2 + 2 is 5."], ["Bonjour !", [{"role": "assistant", "content": "Hola."}]]]


def test_pairwise_judge_returns_an_index_per_prompt(pairwise_model):
    judge = ICRMPairwiseJudge(pairwise_model, gen=FAST, seed=1)
    picks = judge.judge(PROMPTS, PAIRS)
    assert len(picks) == 2 and set(picks) <= {0, 1}


def test_pairwise_judge_undoes_its_shuffle(pairwise_model):
    """A flipped pair is shown exactly as the reversed pair is, so its pick is the mirror
    of the reversed pair's pick (greedy decoding gives the same verdict)."""
    judge = ICRMPairwiseJudge(pairwise_model, gen=FAST)
    swapped = judge.judge(PROMPTS[:1], [PAIRS[0][::-1]], shuffle_order=False)
    assert swapped[0] in (0, 1)
    judge._rng.random = lambda: 0.0  # force the flip: A is the second completion
    flipped = judge.judge(PROMPTS[:1], PAIRS[:1], shuffle_order=True)
    assert flipped == [1 - swapped[0]]


def test_pairwise_judge_refuses_other_than_pairs(pairwise_model):
    judge = ICRMPairwiseJudge(pairwise_model, gen=FAST)
    with pytest.raises(InputError, match="expected 2 completions"):
        judge.judge(["q"], [["a", "b", "c"]])


def test_reward_function_scores_each_completion(individual_model):
    reward = ICRMReward(individual_model, gen=FAST)
    values = reward(PROMPTS, ["4", [{"role": "assistant", "content": "Bonjour !"}]], extra=[1, 2])
    assert len(values) == 2 and all(1.0 <= v <= 10.0 for v in values)
    assert reward.__name__ == "icrm_reward"


def test_reward_function_needs_an_individual_model(pairwise_model):
    with pytest.raises(InputError, match="individual"):
        ICRMReward(pairwise_model)


def test_failed_examples_raise_or_get_the_failed_reward(individual_model):
    bad = [{"role": "system", "content": "only a system turn"}]
    with pytest.raises(InputError, match="completion 0"):
        ICRMReward(individual_model, gen=FAST)(["q"], [bad])
    reward = ICRMReward(individual_model, gen=FAST, failed_reward=0.0)
    assert reward(["q"], [bad]) == [0.0]


def test_reward_function_fits_trls_reward_callable_protocol(individual_model):
    """TRL's trainers name a reward callable with ``get_callable_name`` and call it with
    keyword arguments (prompts, completions, completion_ids, dataset columns)."""
    utils = pytest.importorskip("trl.trainer.utils", reason="TRL not installed")
    reward = ICRMReward(individual_model, gen=FAST)
    assert utils.get_callable_name(reward) == "icrm_reward"
    values = reward(prompts=["What is 2 + 2?"], completions=["4"], completion_ids=[[19]], x=[0])
    assert len(values) == 1 and 1.0 <= values[0] <= 10.0
