"""GRPO on the CPU with icrm-sgl as the reward: a few steps of TRL's ``GRPOTrainer`` on a
135M policy, every completion scored by the judge (in this process, or by a running
``icrm-sgl serve``).

    python examples/grpo_with_icrm.py                        # judge in this process
    python examples/grpo_with_icrm.py --endpoint http://127.0.0.1:8000
    python examples/grpo_with_icrm.py --compare-serve        # both, one run: rewards/s

The policy is the SmolLM2-135M checkpoint converted from the packaged GGUF
(``devtools/sglang_cpu/convert.py``, cached under ~/.cache/icrm-sgl), or ``--policy DIR``
for any Hugging Face causal LM. TRL writes each step's completions and rewards to
``OUTPUT/completions/completions_NNNNN.parquet``; this script prints them and a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: A four-prompt dataset; ``reference`` is a dataset column that reaches the reward function
#: (and, through it, any judge whose template has ``{$reference}``).
PROMPTS = [
    {"prompt": "What is the capital of France?", "reference": "Paris."},
    {"prompt": "Give one tip for sleeping well.", "reference": "Keep a regular bedtime."},
    {"prompt": "What is 7 times 6?", "reference": "42."},
    {"prompt": "Name a primary colour.", "reference": "Red."},
]


def policy_path(given: str | None) -> str:
    """``--policy``, else the converted SmolLM2 checkpoint (built on first use, ~25 s)."""
    if given:
        return given
    sys.path.insert(0, str(ROOT))
    from devtools.sglang_cpu.convert import converted_model

    return str(converted_model())


def grpo_trainer(reward: Any, policy: str, output_dir: str, args: argparse.Namespace) -> Any:
    """A CPU ``GRPOTrainer``: ``args.steps`` steps over the four prompts, each step one
    batch of every prompt times ``args.generations`` completions."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    config = GRPOConfig(
        output_dir=output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=len(PROMPTS) * args.generations,
        num_generations=args.generations,
        max_completion_length=args.max_completion_length,
        learning_rate=1e-5,
        logging_steps=1,
        log_completions=True,
        num_completions_to_print=0,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=args.seed,
        disable_tqdm=True,
    )
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(policy, padding_side="left")
    return GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=config,
        train_dataset=Dataset.from_list(PROMPTS),
        processing_class=tokenizer,
    )


def run(reward: Any, policy: str, output_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train and report: per-step mean reward, every logged completion and its reward, the
    time and the judge's rewards per second inside the steps."""
    import pandas as pd

    trainer = grpo_trainer(reward, policy, output_dir, args)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    steps = [
        {"step": e["step"], "reward": e["rewards/icrm_reward/mean"]}
        for e in trainer.state.log_history
        if "rewards/icrm_reward/mean" in e
    ]
    logged = sorted((Path(output_dir) / "completions").glob("completions_*.parquet"))
    table = pd.concat([pd.read_parquet(p) for p in logged], ignore_index=True)
    return {
        "steps": steps,
        "completions": table[["step", "prompt", "completion", "icrm_reward"]].to_dict("records"),
        "train_seconds": round(seconds, 1),
        "judge_seconds": round(reward.stats.seconds, 1),
        "rewards": reward.stats.completions,
        "failed": reward.stats.failed,
        "rewards_per_second": round(reward.stats.per_second, 3),
    }


def in_process(policy: str, output_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    from icrm_sgl.integrations.trl import ICRMReward

    gen = {"max_tokens": args.max_tokens}
    with ICRMReward(num_shots=args.num_shots, gen=gen) as reward:
        return run(reward, policy, output_dir, args)


def served(policy: str, output_dir: str, args: argparse.Namespace, url: str) -> dict[str, Any]:
    from icrm_sgl.integrations.trl import ICRMReward

    with ICRMReward(endpoint=url, timeout=args.timeout) as reward:
        return run(reward, policy, output_dir, args)


def launched_serve(args: argparse.Namespace) -> Any:
    """``icrm-sgl serve`` (individual mode, this script's judge settings) on a free port."""
    from icrm_sgl.engines.server_process import free_port, serve

    port = free_port()
    cmd = [sys.executable, "-m", "icrm_sgl.cli", "serve", "--port", str(port)]
    cmd += ["--rm-type", "individual", "--num-shots", str(args.num_shots)]
    cmd += ["--max-tokens", str(args.max_tokens), "--deadline", str(args.timeout)]
    return serve(cmd, port, timeout=300, name="icrm-sgl serve")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--generations", type=int, default=2, help="completions per prompt")
    parser.add_argument("--max-completion-length", type=int, default=16, help="tokens")
    parser.add_argument("--num-shots", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=40, help="judge verdict budget")
    parser.add_argument("--endpoint", help="a running icrm-sgl serve (base URL)")
    parser.add_argument("--compare-serve", action="store_true", help="in-process, then serve")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per reward call")
    parser.add_argument("--policy", help="Hugging Face model directory for the policy")
    parser.add_argument("--output-dir", default="runs/grpo_with_icrm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args()
    policy = policy_path(args.policy)
    out = Path(args.output_dir)
    report: dict[str, Any] = {}
    if args.endpoint:
        report["serve"] = served(policy, str(out / "serve"), args, args.endpoint)
    else:
        report["in_process"] = in_process(policy, str(out / "in_process"), args)
    if args.compare_serve and not args.endpoint:
        server = launched_serve(args)
        try:
            report["serve"] = served(policy, str(out / "serve"), args, server.url)
        finally:
            server.stop(grace=30)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
