"""``ICRMReward`` called the way TRL's GRPO calls reward functions: through the trainer's own
``_calculate_rewards`` (plain and conversational text, ``completion_ids``, dataset columns
and ``trainer_state`` as keyword arguments), on the real SmolLM2 judge."""

from __future__ import annotations

import math

import pytest

from icrm_sgl import ICRM
from icrm_sgl.errors import EngineError
from icrm_sgl.integrations.trl import ICRMReward
from tests.conftest import FAST

PROMPTS = ["What is the capital of France?", "What is 7 times 6?"]
COMPLETIONS = ["Paris.", "42."]
REFERENCES = ["Paris.", "42."]


def rewards(trainer, prompts, completions):
    """TRL's own reward step for one batch (rows as the trainer builds them)."""
    inputs = [
        {"prompt": p, "completion": c, "reference": r}
        for p, c, r in zip(prompts, completions, REFERENCES, strict=True)
    ]
    ids = [[1, 2]] * len(prompts)
    return trainer._calculate_rewards(inputs, prompts, completions, ids)[:, 0].tolist()


def texts(example):
    """An example's (user prompt, reply) text."""
    return tuple(turn["content"] for turn in example["conversation"])


def test_trl_passes_text_ids_columns_and_trainer_state_and_logs_judge_rewards(
    individual_model, grpo_trainer, judged
):
    reward = ICRMReward(individual_model, gen=FAST)
    got = rewards(grpo_trainer(reward), PROMPTS, COMPLETIONS)
    assert [texts(example) for example, _ in judged] == list(zip(PROMPTS, COMPLETIONS, strict=True))
    assert got == pytest.approx([value for _, value in judged], abs=1e-5)
    assert all(1.0 <= r <= 10.0 for r in got)
    # the dataset column reached each example; TRL's own keywords did not
    assert [example["reference"] for example, _ in judged] == REFERENCES
    assert not {"trainer_state", "completion_ids", "log_metric"} & set(judged[0][0])
    assert reward.stats.calls == 1 and reward.stats.failed == 0


def test_conversational_prompts_and_completions(individual_model, grpo_trainer, judged):
    trainer = grpo_trainer(ICRMReward(individual_model, gen=FAST))
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    completions = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    got = rewards(trainer, prompts, completions)
    assert [texts(example) for example, _ in judged] == list(zip(PROMPTS, COMPLETIONS, strict=True))
    assert got == pytest.approx([value for _, value in judged], abs=1e-5)


@pytest.mark.slow
def test_whitespace_and_4000_character_completions_get_rewards(individual_model, grpo_trainer):
    trainer = grpo_trainer(ICRMReward(individual_model, gen=FAST))
    got = rewards(trainer, PROMPTS, ["   \n\t ", "x" * 4000])
    assert all(1.0 <= r <= 10.0 for r in got)


def test_a_bad_completion_type_gets_no_reward_and_the_rest_are_judged(
    individual_model, grpo_trainer
):
    """TRL turns the ``None`` into NaN: GRPO leaves that completion out of the baseline."""
    reward = ICRMReward(individual_model, gen=FAST)
    got = rewards(grpo_trainer(reward), PROMPTS, [12345, "42."])
    assert math.isnan(got[0]) and 1.0 <= got[1] <= 10.0
    assert reward.stats.failed == 1


def test_a_judge_failure_inside_the_step_gives_no_reward(grpo_trainer):
    """A real per-example judge failure: the 4,000-character completion does not fit the
    judge's 512-token context, so that completion gets no verdict; the other does."""
    from icrm_sgl.engines.local.engine import LocalBackend, LocalOptions

    backend = LocalBackend(LocalOptions(n_ctx=512))
    try:
        model = ICRM(rm_type="individual", num_shots=0, backend=backend)
        reward = ICRMReward(model, gen=FAST)
        got = rewards(grpo_trainer(reward), PROMPTS, ["x" * 4000, "42."])
    finally:
        backend.shutdown()
    assert math.isnan(got[0]) and 1.0 <= got[1] <= 10.0


def test_a_judge_that_fails_as_a_whole_stops_the_step_with_one_error(grpo_trainer):
    """A closed engine is not a per-completion problem: the step raises, it does not hang."""
    model = ICRM(rm_type="individual", num_shots=1)
    model.close()
    trainer = grpo_trainer(ICRMReward(model, gen=FAST))
    with pytest.raises(EngineError, match="closed"):
        rewards(trainer, PROMPTS, COMPLETIONS)


def test_an_empty_batch_gives_no_rewards_without_judging(individual_model, grpo_trainer):
    reward = ICRMReward(individual_model, gen=FAST)
    trainer = grpo_trainer(reward)
    assert reward([], [], completion_ids=[], trainer_state=trainer.state) == []
    assert reward.stats.completions == 0
