"""A rubric judge on a hosted engine: the openai engine against the loopback llama.cpp
server (SmolLM2), through the official client; the schema comes from the rubric."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.judges import as_judge
from tests.conftest import EXAMPLES

CORRECT = EXAMPLES / "judges" / "reference_correct.toml"


def test_rubric_verdicts_and_probabilities_through_llama_server(run_cli, llama_server, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "score", EXAMPLES / "judges" / "reference_correct.jsonl", "--judge", CORRECT,
        "--engine", "openai", "--base-url", llama_server, "--model", "smollm2",
        "--completion", "-E", "completion_schema=llama.cpp", "--num-shots", "0",
        "--max-tokens", "200", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    judge = as_judge(CORRECT)
    got = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert sorted(r["id"] for r in got) == ["planet", "sum-right", "sum-wrong"]
    for record in got:
        assert judge.public(judge.validate(record["verdict"])) == record["verdict"]
        meta = record["meta"]
        assert meta["engine"] == "openai" and meta["rm_type"] == "reference_correct"
        probs = meta["probabilities"]
        assert set(probs) == {"true", "false"}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert meta["reward"] == pytest.approx(probs["true"], abs=1e-5)


def test_a_rubric_verdict_without_log_probabilities_carries_the_reward_it_names(
    run_cli, llama_server, tmp_path
):
    """With ``-E logprobs=false`` nothing gives an expected value: ``meta.reward`` is the
    value the verdict names, through the rubric's scores, as on the local engine."""
    src = tmp_path / "one.jsonl"
    first = (EXAMPLES / "judges" / "reference_correct.jsonl").read_text("utf-8").splitlines()[0]
    src.write_text(first + "\n", "utf-8")
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "score", src, "--judge", CORRECT, "--engine", "openai", "--base-url", llama_server,
        "--model", "smollm2", "--completion", "-E", "completion_schema=llama.cpp",
        "-E", "logprobs=false", "--num-shots", "0", "--max-tokens", "120", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert "probabilities" not in record["meta"]
    judge = as_judge(CORRECT)
    spec = judge.field_named(judge.reward)
    assert record["meta"]["reward"] == judge.number(spec, json.dumps(record["verdict"][spec.key]))
