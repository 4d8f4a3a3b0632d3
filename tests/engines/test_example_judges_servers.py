"""The example judges of two replies (examples/judges/) on real servers: the loopback
llama.cpp server through the openai engine, and the sglang CPU server. Each judges one
pair of each judge's example file in both orders; the verdicts must be valid and
reconciled. The servers are the session's own (tests/engines/conftest.py)."""

from __future__ import annotations

import json

import pytest

from icrm_sgl import ICRM
from icrm_sgl.judges import Judge, as_judge
from icrm_sgl.judging.pair_judging import judge_pairs
from tests.conftest import EXAMPLES

JUDGES = EXAMPLES / "judges"
#: The default run judges one example per server (its choice field named ``verdict``, with a
#: tie); ``-m slow`` all three.
PAIRWISE = (
    pytest.param("prometheus_relative", marks=pytest.mark.slow),
    "mtbench_pairwise",
    pytest.param("multiturn_pairwise", marks=pytest.mark.slow),
)


def first_pair(name: str) -> dict:
    with (JUDGES / f"{name}.jsonl").open(encoding="utf-8") as f:
        return json.loads(f.readline())


def check_reconciled(judge: Judge, result: dict) -> None:
    assert set(result["verdicts"]) == {"A/B", "B/A"}
    for verdict in result["verdicts"].values():
        assert judge.public(judge.validate(verdict)) == verdict
    assert 0.0 <= result["p_a_better"] <= 1.0 and isinstance(result["flipped"], bool)


@pytest.mark.parametrize("name", PAIRWISE)
def test_a_pairwise_example_in_both_orders_on_the_llama_server(
    name, run_cli, llama_server, tmp_path
):
    rubric = JUDGES / f"{name}.toml"
    out = tmp_path / f"{name}.jsonl"
    done = run_cli(
        "score", JUDGES / f"{name}.jsonl", "--judge", rubric, "--both-orders",
        "--engine", "openai", "--base-url", llama_server, "--model", "smollm2",
        "--completion", "-E", "completion_schema=llama.cpp", "--num-shots", "0",
        "--max-tokens", "120", "--limit", "1", "-o", out,
        "-E", "logprobs=false",  # both orders are the point; the sglang twin has probabilities
    )  # fmt: skip
    assert done.returncode == 0, f"{name}: {done.stderr}"
    (record,) = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert record["meta"]["orders"]["A/B"]["engine"] == "openai"
    check_reconciled(as_judge(rubric), record["result"])


@pytest.mark.sglang_server
@pytest.mark.parametrize("name", PAIRWISE)
def test_a_pairwise_example_in_both_orders_on_the_sglang_server(name, sglang_backend):
    model = ICRM(judge=JUDGES / f"{name}.toml", engine="sglang", backend=sglang_backend)
    (result,) = judge_pairs(model, [first_pair(name)], both_orders=True, max_tokens=40)
    assert result.ok, f"{name}: {result.error}"
    assert result.meta["orders"]["A/B"]["engine"] == "sglang"
    check_reconciled(model.definition, result.result())
