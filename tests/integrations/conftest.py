"""A real TRL ``GRPOTrainer`` on the converted SmolLM2 policy (CPU), for the tests that call
TRL's own reward path, and a real ``icrm-sgl serve`` for the endpoint tests."""

from __future__ import annotations

import pytest

#: Four prompts with a dataset column; TRL passes ``reference`` on to reward functions.
DATASET = [
    {"prompt": "What is the capital of France?", "reference": "Paris."},
    {"prompt": "What is 7 times 6?", "reference": "42."},
]


@pytest.fixture
def judged(individual_model, monkeypatch):
    """Every (example, judgement) the session's individual ICRM produces in this test: the
    engine's rewards for the same text vary with its prefix-cache state, so rewards are
    checked against what the judge returned at the time, not against a second judging."""
    record = []
    judge_batch = individual_model.judge_batch

    def recording(examples, **gen):
        examples = list(examples)
        by_id = {str(e.get("id", i)): e for i, e in enumerate(examples)}
        for result in judge_batch(examples, **gen):
            reward = (
                individual_model.definition.reward_value(result.verdict, result.meta)
                if result.ok
                else None
            )
            record.append((by_id[result.id], reward))
            yield result

    monkeypatch.setattr(individual_model, "judge_batch", recording)
    return record


@pytest.fixture(scope="session")
def policy(converted_checkpoint):
    """The converted SmolLM2 checkpoint as a float32 policy and its tokenizer (loaded once)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from devtools.sglang_cpu.convert import converted_model

    path = converted_model()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(path, padding_side="left")


@pytest.fixture
def grpo_trainer(policy, tmp_path):
    """``make(reward_funcs)``: a CPU ``GRPOTrainer`` over ``DATASET`` (built, not trained)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def make(*reward_funcs):
        config = GRPOConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=4,
            num_generations=2,
            max_completion_length=8,
            max_steps=1,
            report_to="none",
            use_cpu=True,
            bf16=False,
        )
        model, tokenizer = policy
        return GRPOTrainer(
            model=model,
            reward_funcs=list(reward_funcs),
            args=config,
            train_dataset=Dataset.from_list(DATASET),
            processing_class=tokenizer,
        )

    return make


@pytest.fixture(scope="module")
def reward_server():
    """``icrm-sgl serve`` (individual mode, 1 shot, 40-token verdicts) whose queue holds
    one example and which judges one at a time, so 413 and 429 are reachable."""
    from tests.serve.conftest import launch

    limits = ["--max-queue", "1", "--max-batch", "1", "--deadline", "900"]
    proc = launch("--rm-type", "individual", *limits)
    yield proc
    proc.stop(grace=30)
