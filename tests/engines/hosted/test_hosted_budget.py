"""A hosted reply cut by its token budget never costs the verdict: its finished fields are
kept, the field it was cut in is closed, and the next request asks only for the rest
(scripted stand-in server for the exact requests; the real llama.cpp server for the
budgets a user types)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from icrm_sgl.engines import create_engine
from icrm_sgl.engines.hosted.fields import FieldRequest, read_fields
from icrm_sgl.errors import VerdictError
from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES
from tests.engines.standin import VALID, StandinServer, chat_reply

GEN = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 50}


def engine(url: str, **options):
    return create_engine(
        "openai", model_name="standin", base_url=f"{url}/v1", api_key="sk-test", **options
    )


def test_a_cut_reply_keeps_its_fields_and_asks_only_for_the_rest_with_standin_server():
    cut = '{"analysis of A": "Concrete.", "analysis of B": "Vague and it goes on an'
    rest = {k: v for k, v in VALID.items() if k not in ("analysis of A", "analysis of B")}
    replies = [chat_reply(cut, "length"), chat_reply(json.dumps(rest))]
    with StandinServer(replies) as server:
        verdict, meta = engine(server.url).judge(
            "Judge this.", default_judge("pairwise"), False, GEN
        )
    assert verdict == {**VALID, "analysis of B": "Vague and it goes on an"}
    assert meta["retries"] == 1
    first, second = server.requests
    assert first["max_tokens"] == FieldRequest.whole(default_judge("pairwise"), 10).max_tokens
    schema = second["response_format"]["json_schema"]["schema"]
    assert schema["required"] == list(rest) and list(schema["properties"]) == list(rest)
    assert (
        second["max_tokens"] == FieldRequest(default_judge("pairwise"), tuple(rest), 10).max_tokens
    )
    assert "cut off at its length limit" in second["messages"][-1]["content"]


def test_a_choice_cut_mid_value_is_asked_for_again_with_standin_server():
    text = json.dumps(VALID)[: -len('+"}')]  # ... "choice": "A  (of "A++" or "A+")
    replies = [chat_reply(text, "length"), chat_reply(json.dumps({"choice": "A++"}))]
    with StandinServer(replies) as server:
        verdict, _ = engine(server.url).judge("Judge this.", default_judge("pairwise"), False, GEN)
    assert verdict == {**VALID, "choice": "A++"}
    schema = server.requests[1]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["choice"]


def test_replies_cut_before_any_field_is_one_clear_error_with_standin_server():
    with StandinServer([chat_reply("", "length")]) as server, pytest.raises(VerdictError) as info:
        engine(server.url, max_retries=2).judge("Judge.", default_judge("pairwise"), False, GEN)
    assert "cut by its token budget before a field was finished" in str(info.value)
    assert "raise --max-tokens" in str(info.value) and len(server.requests) == 3


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('{"intent": "Help', {"intent": "Help"}),
        ('{"intent": "a", "checklist": "b\\', {"intent": "a", "checklist": "b"}),
        ('{"intent": "a", "score": 1', {"intent": "a"}),  # 1 may be the start of 10
        ('{"intent": "a", "checklist": "b", "sc', {"intent": "a", "checklist": "b"}),
    ],
)
def test_read_fields_of_a_cut_reply(text, found):
    assert read_fields(text, True, FieldRequest.whole(default_judge("individual"))) == found


# -- the budgets a user types, against the real llama.cpp server ---------------------------


#: One case in the default run (65 s at load 11 on 2 cores); the rest with -m slow.
BUDGETS = [
    pytest.param(mode, n, marks=() if (mode, n) == ("pairwise", 60) else pytest.mark.slow)
    for mode in ("individual", "pairwise")
    for n in (200, 60, 30)
]


@pytest.mark.parametrize(("mode", "max_tokens"), BUDGETS)
def test_every_budget_gives_a_valid_verdict_on_llama_server(
    llama_server, run_cli, mode, max_tokens
):
    """The issue's command: one shot, --max-tokens 200 / 60 / 30, SmolLM2 on llama.cpp."""
    args = ["score", EXAMPLES / f"test_{mode}.json", "--engine", "openai"]
    args += ["--base-url", llama_server, "--model", "smollm2", "--num-shots", "1"]
    args += ["-E", "logprobs=false"]  # validity is the point; probabilities: test_hosted_logprobs
    proc = run_cli(*args, "--max-tokens", max_tokens)
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout)
    default_judge(mode).validate(verdict)


# -- an interrupted hosted batch ------------------------------------------------------------


def test_sigterm_during_a_hosted_batch_ends_at_once_with_the_summary(llama_server, tmp_path):
    """Requests in flight on a slow server must not hold the process up (it took ~100 s)."""
    example = json.loads((EXAMPLES / "test_pairwise.json").read_text())
    src, out = tmp_path / "b.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"id": f"e{i}", **example}) + "\n" for i in range(6)))
    cmd = [sys.executable, "-m", "icrm_sgl.cli", "score", str(src), "--engine", "openai"]
    # Two shots: a prompt no other test sends, whose prefill (~1,700 tokens on one thread)
    # keeps the requests in flight well past the 5 s bound. llama-cpp-python cannot cancel a
    # request whose client is gone, so the server finishes both after the test, holding the
    # next test's requests back: no log-probabilities (~0.2 s a token: over a minute with
    # them) and a small budget (the decoding after the prefill is not what is tested).
    cmd += ["--base-url", llama_server, "--model", "smollm2", "--num-shots", "2"]
    cmd += ["-E", "logprobs=false", "--max-tokens", "16", "--concurrency", "2", "-o", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    _wait_for_progress_bar(proc)
    time.sleep(1.0)  # both requests are in flight on the one-thread server
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _, stderr = proc.communicate(timeout=120)
    ended_after = time.monotonic() - signalled
    assert proc.returncode == 143, stderr
    assert ended_after < 5.0, f"{ended_after:.1f} s"
    assert "interrupted after " in stderr and "Traceback" not in stderr
    lines = [x.strip() for x in stderr.splitlines() if x.strip()]  # tqdm redraws with \r
    assert lines[-2].startswith("interrupted after ")  # no progress bar redrawn after it
    assert lines[-1] == "interrupted (SIGTERM)"


def _wait_for_progress_bar(proc: subprocess.Popen, timeout: float = 300.0) -> None:
    """Until the batch's progress bar (``0/6``) is on stderr: the requests are being sent."""
    deadline = time.monotonic() + timeout
    seen = ""
    while "/6" not in seen:
        assert time.monotonic() < deadline and proc.poll() is None, seen
        seen += proc.stderr.read(1)
