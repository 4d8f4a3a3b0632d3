"""Online DPO with the judge: TRL 1.1+ has no judge interface, its online DPO takes reward
functions; ``ICRMReward`` goes through the trainer's own reward path, which compares each
prompt's two completions (first half of the batch against the second)."""

from __future__ import annotations

import warnings

import pytest

from icrm_sgl.integrations.trl import ICRMReward
from tests.conftest import FAST
from tests.integrations.conftest import DATASET


def test_online_dpo_scores_both_completions_of_each_prompt_with_the_judge(
    individual_model, policy, judged, tmp_path
):
    from datasets import Dataset

    with warnings.catch_warnings():  # trl.experimental warns on import
        warnings.simplefilter("ignore")
        from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    model, tokenizer = policy
    config = OnlineDPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=1,
        max_new_tokens=8,
        max_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
    )
    reward = ICRMReward(individual_model, gen=FAST)
    trainer = OnlineDPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=config,
        train_dataset=Dataset.from_list(DATASET),
        processing_class=tokenizer,
    )
    prompt = DATASET[0]["prompt"]
    total = trainer._calculate_rewards_from_functions(
        prompts=[prompt, prompt],
        completions=["Paris.", "Lyon."],
        completion_ids_list=[[1], [2]],
        reference=[DATASET[0]["reference"]] * 2,
    )
    assert total.tolist() == pytest.approx([value for _, value in judged], abs=1e-5)
    assert [ex["conversation"][-1]["content"] for ex, _ in judged] == ["Paris.", "Lyon."]
    assert [ex["reference"] for ex, _ in judged] == ["Paris."] * 2
