"""Output that fails after it was opened: a full disk, an I/O error, a closed pipe; and
where ``rank -o`` and ``score --both-orders`` put and count their records."""

import json
import os
import pty
import subprocess
import sys

import pytest

from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES

FAST = ["--num-shots", "0", "--max-tokens", "8"]
PAIRWISE = json.loads((EXAMPLES / "test_pairwise.json").read_text())
ITEM = {"prompt": "Name a colour.", "responses": ["Blue.", "A banana."]}


def test_a_full_disk_after_judging_is_one_line_and_exit_2(run_cli):
    proc = run_cli("score", EXAMPLES / "test_pairwise.json", *FAST, "-o", "/dev/full")
    assert proc.returncode == 2, proc.stderr
    assert "error: output /dev/full: cannot write (No space left on device)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_io_error_on_write_is_one_line_and_exit_2(run_cli):
    try:  # writable only for root, and then every write fails with EIO
        open("/proc/version", "w").close()
    except OSError:
        pytest.skip("/proc/version cannot be opened for writing here")
    proc = run_cli("score", EXAMPLES / "test_pairwise.json", *FAST, "-o", "/proc/version")
    assert proc.returncode == 2, proc.stderr
    assert "error: output /proc/version: cannot write (" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_reader_that_hangs_up_ends_score_quietly_with_141(tmp_path):
    src = tmp_path / "b.jsonl"
    src.write_text("".join(json.dumps({"id": f"e{i}", **PAIRWISE}) + "\n" for i in range(3)))
    cmd = [sys.executable, "-m", "icrm_sgl.cli", "score", str(src), *FAST]
    shell = " ".join(map(str, cmd)) + " | head -c 10 >/dev/null; echo ${PIPESTATUS[0]} >&2"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=600)
    assert proc.stderr.splitlines()[-1] == "141", proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_rank_writes_one_item_to_the_output_file(tmp_path, run_cli):
    src, out = tmp_path / "one.json", tmp_path / "ranked.jsonl"
    src.write_text(json.dumps(ITEM))
    proc = run_cli("rank", src, *FAST, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    (record,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(record["ranking"]["order"]) == [0, 1]
    assert f"1 ranked, 0 malformed items skipped, 0 failed; records in {out}" in proc.stderr


def test_rank_to_a_missing_folder_fails_before_judging(tmp_path, run_cli):
    src = tmp_path / "one.json"
    src.write_text(json.dumps(ITEM))
    proc = run_cli("rank", src, *FAST, "-o", "/missing/dir/x.jsonl")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: output /missing/dir/x.jsonl: cannot write (No such file or directory)"
    )


def test_the_both_orders_summary_counts_pairs(tmp_path, run_cli):
    src, out = tmp_path / "b.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "p", **PAIRWISE}) + "\n")
    proc = run_cli("score", src, *FAST, "--both-orders", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "1 pair judged in both orders, 0 malformed examples skipped" in proc.stderr
    (record,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert record["id"] == "p" and "result" in record, record


def test_a_single_example_on_a_terminal_says_what_it_is_doing():
    """The first run looked hung: a model load and a slow first verdict said nothing."""
    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "icrm_sgl.cli", "score", str(EXAMPLES / "test_individual.json")]
    proc = subprocess.Popen([*cmd, *FAST], stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    out, _ = proc.communicate(timeout=600)
    err = _drain(master)
    assert proc.returncode == 0, err
    default_judge("individual").validate(json.loads(out))
    lines = [x.strip() for x in err.splitlines() if x.strip()]
    assert lines[0] == "loading the local engine …"
    assert lines[1].startswith("judging 1 example with ") and "SmolLM2" in lines[1]


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other end is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")
