"""The ``icrm-sgl`` command as a user runs it, real model: one real subprocess, the rest
in-process through the same entry point (``run_cli``)."""

import json
import subprocess
import sys

import pytest

from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES

CLI = [sys.executable, "-m", "icrm_sgl.cli"]
FAST = ["--num-shots", "1", "--max-tokens", "30"]


def run(*args, timeout=300):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_score_individual_example_prints_the_five_keys():
    proc = run("score", str(EXAMPLES / "test_individual.json"), *FAST)
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout)
    assert list(verdict) == default_judge("individual").keys
    assert isinstance(verdict["score"], int) and 1 <= verdict["score"] <= 10
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_score_jsonl_batch_skips_malformed_lines(tmp_path, run_cli):
    example = json.loads((EXAMPLES / "test_pairwise.json").read_text())
    lines = [
        json.dumps({"id": "a", **example}),
        "{not json",
        json.dumps({"id": "b", "conversation_A": example["conversation_A"], "conversation_B": []}),
        json.dumps({"id": "c", **example}),
    ]
    src = tmp_path / "batch.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    proc = run_cli("score", str(src), *FAST, "--output", str(out))
    assert proc.returncode == 2, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {r["id"]: r for r in records}
    assert set(by_id) == {"a", "b", "c", "line 2"}
    for ok in ("a", "c"):
        default_judge("pairwise").validate(by_id[ok]["verdict"])
        assert by_id[ok]["meta"]["prompt_tokens"] > 0
    assert "invalid JSON" in by_id["line 2"]["error"]
    assert "conversation_B" in by_id["b"]["error"]
    assert "2 verdicts, 2 malformed examples skipped, 0 failed" in proc.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["score", "missing.json"], "cannot read"),
        (["score", str(EXAMPLES / "test_pairwise.json"), "--engine", "nope"], "Invalid value"),
        (["score", str(EXAMPLES / "test_pairwise.json"), "--num-shots", "999"], "num_shots"),
        (["score", str(EXAMPLES / "test_pairwise.json"), "--model", "/no/such.gguf"], "GGUF"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, run_cli):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_single_example_names_the_turn(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"conversation": [{"role": "assistant", "content": "hi"}]}))
    proc = run("score", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: example 0: conversation: turn 0 has role 'assistant', expected 'user'"
    ]
