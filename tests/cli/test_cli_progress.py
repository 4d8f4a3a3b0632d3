"""What a single verdict shows while it runs: on a terminal a status line fed by the
engine's decoding loop (fields and tokens done), elsewhere one line saying what runs."""

from __future__ import annotations

import io
import os
import sys
import threading

from icrm_sgl.cli.summary import verdict_progress
from tests.conftest import EXAMPLES, FAST

SHOTS = ["--num-shots", "1", "--max-tokens", "30"]


def test_the_engine_reports_each_token_and_each_field(individual_model, individual_example):
    seen = {"tokens": 0, "fields": 0}

    def hook(tokens: int, fields: int) -> None:
        seen["tokens"] += tokens
        seen["fields"] += fields

    individual_model.backend.set_progress_hook(hook)
    try:
        result = individual_model.judge(individual_example, **FAST)
    finally:
        individual_model.backend.set_progress_hook(None)
    assert seen["fields"] == len(individual_model.definition.fields)
    assert seen["tokens"] == result.meta["completion_tokens"] > 0


def test_off_a_terminal_one_line_says_what_runs(run_cli):
    proc = run_cli("score", EXAMPLES / "test_individual.json", *SHOTS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["judging 1 example with SmolLM2-135M-Instruct.Q8_0 …"]


def _read_all(fd: int, into: io.BytesIO) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other end closed
            return
        if not chunk:
            return
        into.write(chunk)


def test_on_a_terminal_the_status_line_counts_fields_and_tokens(
    monkeypatch, individual_model, individual_example
):
    leader, follower = os.openpty()
    shown = io.BytesIO()
    reader = threading.Thread(target=_read_all, args=(leader, shown))
    reader.start()
    terminal = os.fdopen(follower, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", terminal)
    fields = len(individual_model.definition.fields)
    try:
        with verdict_progress(individual_model, "judging 1 example with SmolLM2"):
            result = individual_model.judge(individual_example, **FAST)
    finally:
        terminal.close()
        reader.join(timeout=30)
        os.close(leader)
    text = shown.getvalue().decode("utf-8")
    assert text.endswith("\r\n")  # the final line is left in place (the terminal adds \r)
    draws = text[:-2].split("\r")[1:]
    assert len(draws) >= 3, text  # redrawn while decoding, not only at the start and end
    assert draws[0] == f"judging 1 example with SmolLM2 … 0/{fields} fields, 0 tokens"
    tokens = result.meta["completion_tokens"]
    assert (
        draws[-1] == f"judging 1 example with SmolLM2 … {fields}/{fields} fields, {tokens} tokens"
    )
