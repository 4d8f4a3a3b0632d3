"""Exit codes and output of ``icrm-sgl score`` beyond malformed input: ``-o`` for one
example, ``--limit``, a verdict that cannot be produced, and SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES

CLI = [sys.executable, "-m", "icrm_sgl.cli"]
FAST = ["--num-shots", "1", "--max-tokens", "40"]
PAIRWISE = json.loads((EXAMPLES / "test_pairwise.json").read_text())


def run(*args, timeout=600):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_output_option_is_honoured_for_a_single_example(tmp_path, run_cli):
    out = tmp_path / "one.jsonl"
    proc = run_cli("score", EXAMPLES / "test_pairwise.json", *FAST, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    (record,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert record["id"] == "0"
    default_judge("pairwise").validate(record["verdict"])
    assert "1 verdict, 0 malformed examples skipped, 0 failed" in proc.stderr


def test_limit_judges_only_the_first_examples(tmp_path, run_cli):
    src = write_jsonl(tmp_path / "b.jsonl", [{"id": f"e{i}", **PAIRWISE} for i in range(3)])
    with src.open("a") as f:
        f.write("{never read\n")
    proc = run_cli("score", src, *FAST, "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == ["e0"]


LONG = {
    "conversation": [
        {"role": "user", "content": "Summarise: " + "the cat sat on the mat " * 200},
        {"role": "assistant", "content": "A cat sat."},
    ]
}
SMALL_CONTEXT = ["--num-shots", "0", "--max-tokens", "40", "-E", "n_ctx=512"]


def test_a_context_overflow_exits_1_for_one_example_as_in_a_batch(tmp_path, run_cli):
    single = tmp_path / "long.json"
    single.write_text(json.dumps(LONG))
    proc = run("score", single, *SMALL_CONTEXT)  # a real process: stderr holds nothing else
    assert proc.returncode == 1, proc.stderr
    status, *errors = proc.stderr.splitlines()
    assert status.startswith("judging 1 example with ")  # the one line off a terminal
    assert errors and all(line.startswith("error: example 0: ") for line in errors)
    assert "context size of 512" in proc.stderr and "Traceback" not in proc.stderr
    short = {"conversation": PAIRWISE["conversation_A"]}
    batch = write_jsonl(tmp_path / "b.jsonl", [LONG, short])
    proc = run_cli("score", batch, *SMALL_CONTEXT)
    assert proc.returncode == 1, proc.stderr
    assert "failed line 1: engine error:" in proc.stderr
    assert "1 verdict, 0 malformed examples skipped, 1 failed" in proc.stderr


def test_sigterm_flushes_prints_the_summary_and_exits_143(tmp_path):
    src = write_jsonl(tmp_path / "b.jsonl", [{"id": f"e{i}", **PAIRWISE} for i in range(12)])
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [*CLI, "score", str(src), *FAST, "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (out.exists() and out.read_text().count("\n") >= 1):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    (summary,) = [x for x in lines if "interrupted after " in x]
    assert lines.index(summary) < lines.index("interrupted (SIGTERM)")
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert 1 <= len(records) < 12
    assert f"interrupted after {len(records)} verdict" in summary
    for record in records:
        default_judge("pairwise").validate(record["verdict"])


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["-E", "n_threads=0"], {}, "bad option n_threads: Input should be greater than"),
        (["-E", "n_seq=0"], {}, "bad option n_seq: Input should be greater than"),
        ([], {"ICRM_THREADS": "two"}, "ICRM_THREADS must be a whole number of threads"),
    ],
)
def test_a_bad_thread_or_sequence_setting_is_one_line_and_exit_2(
    run_cli, monkeypatch, args, env, message
):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    proc = run_cli("score", EXAMPLES / "test_individual.json", *FAST, *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr, proc.stderr
