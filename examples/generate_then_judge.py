"""Generate two answers to a question and judge them, in one sglang program.

Usage: python examples/generate_then_judge.py URL ["question"]

URL is an sglang server (or router). The two answers are generated in forks of the
program state (one greedy, one sampled); then the program writes the judge prompt into the
main state and decodes the verdict with the same server, whose radix cache keeps the
judge's few-shot prefix for every later run. Prints the answers, the verdict and the
choice probabilities as JSON.
"""

from __future__ import annotations

import json
import sys

import sglang as sgl

from icrm_sgl import program_config, read_verdict, write_judgement
from icrm_sgl.engines import create_engine
from icrm_sgl.programs.judge import verdict_accounting

JUDGE = program_config("pairwise", num_shots=1, field_tokens=16, layout="one_request")


@sgl.function
def answer_and_judge(s, question: str) -> None:
    """Two candidate answers from forks, then a pairwise judgement of them."""
    answers = s.fork(2)
    for i, fork in enumerate(answers):
        fork += f"Question: {question}\nA short, helpful answer:"
        fork += sgl.gen("answer", max_tokens=24, temperature=0.8 * i, stop="\n")
    user = {"role": "user", "content": question}
    example = {
        "conversation_A": [user, {"role": "assistant", "content": answers[0]["answer"].strip()}],
        "conversation_B": [user, {"role": "assistant", "content": answers[1]["answer"].strip()}],
    }
    write_judgement(s, JUDGE, **JUDGE.judge.example_fields(example))
    s.set_var("answer_A", example["conversation_A"][1]["content"])
    s.set_var("answer_B", example["conversation_B"][1]["content"])


def main(url: str, question: str) -> None:
    backend = create_engine("sglang", endpoint=url)
    try:
        state = answer_and_judge.run(question=question, backend=backend, temperature=0)
        verdict = read_verdict(state, JUDGE)
        meta = verdict_accounting(state, JUDGE)
    finally:
        backend.shutdown()
    print(
        json.dumps(
            {
                "answer_A": state["answer_A"],
                "answer_B": state["answer_B"],
                "verdict": verdict,
                "probabilities": meta["probabilities"],
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "What is the capital of France?")
