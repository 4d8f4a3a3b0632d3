"""SIGTERM while clients wait: in-flight requests finish or get a clean 503, the server
keeps listening (503 to new work) until they are answered, the process exits within its
drain deadline, and nothing is left running."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from icrm_sgl.judges import default_judge
from icrm_sgl.serve.batcher import ENGINE_GRACE
from tests.conftest import EXAMPLES
from tests.serve.conftest import launch

INDIVIDUAL = json.loads((EXAMPLES / "test_individual.json").read_text())
DRAIN = 10.0
#: Clients with queued examples are answered by the end of the drain; the example in the
#: engine then gets up to 10 s more, plus slack for a contended 2-core machine.
EXIT_WITHIN = DRAIN + 25.0


def test_sigterm_under_load_drains_then_exits_cleanly():
    server = launch("--max-batch", "1", "--drain-timeout", str(DRAIN))
    try:
        assert _ask(server.url, -1)[0] == 200  # warm: the shots prefix is cached
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(_ask, server.url, i) for i in range(8)]
            _wait_until_busy(server.url)
            os.kill(server.proc.pid, signal.SIGTERM)
            signalled = time.monotonic()
            health = _health_while_draining(server.url)
            held = _health_while_clients_wait(server.url, futures, signalled + DRAIN / 2)
            outcomes = [f.result(timeout=EXIT_WITHIN) for f in futures]
        server.proc.wait(timeout=EXIT_WITHIN)
        exited_after = time.monotonic() - signalled
    finally:
        server.stop(grace=5)
    log = Path(server.log_path).read_text()
    # uvicorn re-raises the signal once it has shut down; the CLI turns it into exit 143
    # (128 + SIGTERM), the same code every icrm-sgl command gives SIGTERM.
    assert server.proc.returncode in (143, -signal.SIGTERM), log[-2000:]
    assert exited_after < EXIT_WITHIN
    assert health == (503, "draining")  # still listening: balancers see the drain
    assert held and set(held) == {(503, "draining")}, held  # and for as long as work remains
    statuses = [status for status, _ in outcomes]
    assert set(statuses) <= {200, 503}, outcomes
    for status, body in outcomes:
        if status == 200:
            default_judge("individual").validate(body["verdict"])
        else:
            assert "shut" in body["error"]
    _assert_group_gone(server.proc.pid)
    assert "Traceback" not in log and "Exception ignored" not in log
    assert "Application shutdown complete" in log


def test_sigterm_keeps_listening_while_the_engine_finishes_after_the_drain_deadline():
    """With no drain time, queued examples are dropped at once, but the example already in
    the engine is still judged: until its verdict is sent, new connections get 503 with
    Retry-After (the old tree closed the socket at the deadline and answered that client
    503 too), then the process exits by itself."""
    server = launch("--max-batch", "1", "--max-tokens", "64", "--drain-timeout", "0")
    try:
        assert _ask(server.url, -1)[0] == 200  # warm: the shots prefix is cached
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = [pool.submit(_timed_ask, server.url, i) for i in range(3)]
            _wait_until_busy(server.url)
            os.kill(server.proc.pid, signal.SIGTERM)
            assert _health_while_draining(server.url) == (503, "draining")
            polls = _poll_until_exit(server, timeout=ENGINE_GRACE + 25)
            outcomes = [f.result(timeout=60) for f in futures]
        server.proc.wait(timeout=10)
    finally:
        server.stop(grace=5)
    log = Path(server.log_path).read_text()
    assert server.proc.returncode in (143, -signal.SIGTERM), log[-2000:]
    judged = [answered for answered, status, body in outcomes if status == 200]
    assert judged, outcomes  # the example in the engine got its verdict
    for _, status, body in outcomes:
        if status == 200:
            default_judge("individual").validate(body["verdict"])
        else:
            assert status == 503 and "shut" in body["error"], (status, body)
    refused_early = [t for t, answer in polls if answer is None and t < max(judged) - 1.0]
    assert not refused_early, polls  # listening for as long as a client waited (1 s slack)
    unavailable = [answer for _, answer in polls if answer is not None]
    assert len(unavailable) >= 2, polls  # repeated new connections were answered
    assert {path for path, _ in unavailable} == {"/health", "/v1/judge"}, polls
    assert all(retry and int(retry) >= 1 for _, retry in unavailable), polls  # when to retry
    _assert_group_gone(server.proc.pid)
    assert "Traceback" not in log and "Application shutdown complete" in log


def _timed_ask(url: str, i: int) -> tuple[float, int, dict]:
    """``_ask``'s answer with the time it arrived."""
    status, body = _ask(url, i)
    return time.monotonic(), status, body


def _poll_until_exit(server, timeout: float) -> list[tuple[float, tuple[str, str | None] | None]]:
    """New connections, /health and POST /v1/judge in turn, until the process is gone: when
    each was sent, and (path, Retry-After) for a 503 of a draining server or None when the
    connection was refused. Any other answer fails the test."""
    polls: list[tuple[float, tuple[str, str | None] | None]] = []
    deadline = time.monotonic() + timeout
    while server.proc.poll() is None and time.monotonic() < deadline:
        sent = time.monotonic()
        polls.append((sent, _unavailable(server.url, "/health" if len(polls) % 2 else "/v1/judge")))
        time.sleep(0.1)
    assert server.proc.poll() is not None, "the server did not exit by itself"
    return polls


def _unavailable(url: str, path: str) -> tuple[str, str | None] | None:
    """(path, Retry-After header) of a draining server's 503; None if refused."""
    try:
        if path == "/health":
            reply = requests.get(f"{url}{path}", timeout=30)
        else:
            reply = requests.post(f"{url}{path}", json={"id": "new", **INDIVIDUAL}, timeout=30)
    except requests.ConnectionError:
        return None
    expected = "draining" if path == "/health" else "shutting down"
    assert reply.status_code == 503 and expected in reply.text, (path, reply.text)
    return path, reply.headers.get("Retry-After")


def _ask(url: str, i: int) -> tuple[int, dict]:
    reply = requests.post(f"{url}/v1/judge", json={"id": str(i), **INDIVIDUAL}, timeout=300)
    return reply.status_code, reply.json()


def _health_while_draining(url: str) -> tuple[int, str]:
    """/health's answer once the server saw the signal (a 200 may come before it has)."""
    deadline = time.monotonic() + 10
    while True:
        reply = requests.get(f"{url}/health", timeout=30)
        if reply.status_code != 200 or time.monotonic() > deadline:
            return reply.status_code, reply.json()["status"]
        time.sleep(0.05)


def _health_while_clients_wait(url: str, futures: list, until: float) -> list[tuple]:
    """/health's answers, each taken while two or more clients were still waiting (with
    --max-batch 1 the engine then has work left) and well before the drain deadline."""
    answers = []
    while time.monotonic() < until and sum(not f.done() for f in futures) >= 2:
        try:
            reply = requests.get(f"{url}/health", timeout=30)
            answer = (reply.status_code, reply.json()["status"])
        except requests.ConnectionError:
            answer = (None, "connection refused")
        if sum(not f.done() for f in futures) >= 2:
            answers.append(answer)
        time.sleep(0.1)
    return answers


def _wait_until_busy(url: str, timeout: float = 120.0) -> None:
    """Until one example is in the engine and others wait behind it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = requests.get(f"{url}/health", timeout=30).json()
        if health["in_engine"] >= 1 and health["queue_depth"] >= 2:
            return
        time.sleep(0.02)
    raise AssertionError("the server never got busy")


def _assert_group_gone(pgid: int) -> None:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return
    raise AssertionError(f"process group {pgid} still has members")
