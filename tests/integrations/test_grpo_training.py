"""Two real GRPO steps on the CPU (``examples/grpo_with_icrm.py``'s trainer: the converted
SmolLM2 policy, four prompts, two completions each) with ``ICRMReward`` on the local
engine; the rewards TRL logged per completion are the ones the judge gave those texts."""

from __future__ import annotations

import argparse
import importlib.util

import pytest

from icrm_sgl.integrations.trl import ICRMReward
from tests.conftest import EXAMPLES, FAST


def example_module():
    spec = importlib.util.spec_from_file_location("grpo_with_icrm", EXAMPLES / "grpo_with_icrm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_two_grpo_steps_train_on_rewards_from_the_judge(individual_model, judged, tmp_path):
    from devtools.sglang_cpu.convert import converted_model

    example = example_module()
    args = argparse.Namespace(steps=2, generations=2, max_completion_length=16, seed=0)
    reward = ICRMReward(individual_model, gen=FAST)
    report = example.run(reward, str(converted_model()), str(tmp_path), args)

    assert [s["step"] for s in report["steps"]] == [1, 2]
    assert reward.stats.calls == 2 and reward.stats.completions == 16
    logged = report["completions"]
    assert len(logged) == 16 and {r["step"] for r in logged} == {1, 2}
    # each logged reward is the reward the judge gave that prompt and completion
    by_text = {tuple(t["content"] for t in ex["conversation"]): r for ex, r in judged}
    assert len(judged) == 16
    for row in logged:
        assert row["icrm_reward"] == pytest.approx(by_text[row["prompt"], row["completion"]])
    # and the per-step mean TRL logged is the mean of that step's rewards
    for step in report["steps"]:
        values = [r["icrm_reward"] for r in logged if r["step"] == step["step"]]
        assert step["reward"] == pytest.approx(sum(values) / len(values), abs=1e-4)
