"""A reader of standard output that hangs up ends every command quietly with exit 141,
as ``score`` does (click on its own would exit 1)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "args",
    [["shots", "list"], ["shots", "show", "ind-chat-01"], ["shots", "validate", "--help"]],
    ids=["shots-list", "shots-show", "help"],
)
def test_a_closed_stdout_pipe_exits_141_without_a_word(args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "icrm_sgl.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line: every write fails
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, stderr
    assert stderr == ""
