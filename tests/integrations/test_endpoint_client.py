"""``ICRMReward(endpoint=...)`` against misbehaving servers: real sockets on 127.0.0.1 that
trickle their answer, answer busy, or answer a 200 that is not ``/get_reward``'s. The call
keeps one deadline, retries busy answers within it, and turns a malformed answer into one
``EngineError``."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from icrm_sgl.errors import EngineError
from icrm_sgl.integrations.trl import ICRMReward

#: What a handler gets: the connected socket, after the request was read in full.
Handler = Callable[[socket.socket], None]


def _read_request(conn: socket.socket) -> None:
    """Read one HTTP request (headers, then the Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)


@contextmanager
def http_server(handler: Handler) -> Iterator[str]:
    """A threaded TCP server on 127.0.0.1 that reads each request and lets ``handler``
    answer on the raw socket; yields its base URL."""

    class Answer(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            _read_request(self.request)
            with contextlib.suppress(OSError):  # the client hung up: the deadline tests' end
                handler(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Answer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def answer(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def trickle(prefix: bytes, stop: threading.Event, every: float = 0.5) -> Handler:
    """Send ``prefix``, then one byte every ``every`` seconds until ``stop`` or a hang-up."""

    def handle(conn: socket.socket) -> None:
        conn.sendall(prefix)
        while not stop.wait(every):
            conn.sendall(b" ")

    return handle


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", id="body"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Slow:", id="headers"),
    ],
)
def test_a_trickling_server_cannot_hold_the_call_past_its_timeout(prefix):
    """Each byte arrives well within a socket timeout, so only a deadline on the whole
    answer ends the call (the probe saw 19.6 s for timeout=4, and forever for more)."""
    stop = threading.Event()
    with http_server(trickle(prefix, stop)) as url:
        reward = ICRMReward(endpoint=url, timeout=2)
        started = time.monotonic()
        with pytest.raises(EngineError, match=r"no answer within 2 s"):
            reward(["q"], ["a"])
        took = time.monotonic() - started
        stop.set()
    assert 1.9 <= took < 3.5, took


def test_busy_answers_are_retried_within_the_deadline():
    """Two 429s with Retry-After, then the rewards: one call, one answer."""
    served: list[int] = []

    def handle(conn: socket.socket) -> None:
        served.append(1)
        if len(served) <= 2:
            conn.sendall(answer("429 Too Many Requests", b"busy", "Retry-After: 0.2"))
        else:
            conn.sendall(answer("200 OK", json.dumps({"rewards": [7, 3.5]}).encode()))

    with http_server(handle) as url:
        assert ICRMReward(endpoint=url, timeout=10)(["q", "r"], ["a", "b"]) == [7, 3.5]
    assert len(served) == 3


def test_a_server_busy_past_the_timeout_ends_the_call_at_its_deadline():
    def handle(conn: socket.socket) -> None:
        conn.sendall(answer("503 Service Unavailable", b"draining", "Retry-After: 0.3"))

    with http_server(handle) as url:
        started = time.monotonic()
        with pytest.raises(EngineError, match="HTTP 503"):
            ICRMReward(endpoint=url, timeout=2)(["q"], ["a"])
    assert time.monotonic() - started < 3.0


def test_a_failed_verdict_in_a_200_is_no_reward():
    body = {"rewards": [8.0, 0.0], "extra_logs": {"icrm_failed": [0.0, 1.0]}}

    def handle(conn: socket.socket) -> None:
        conn.sendall(answer("200 OK", json.dumps(body).encode()))

    with http_server(handle) as url:
        assert ICRMReward(endpoint=url, timeout=10)(["q", "r"], ["a", "b"]) == [8.0, None]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(b"<html>oops</html>", "Invalid JSON", id="not-json"),
        pytest.param(b"null", "Input should be an object", id="null"),
        pytest.param(b'"rewards"', "Input should be an object", id="string"),
        pytest.param(b"[7.0, 3.0]", "Input should be an object", id="list"),
        pytest.param(b'{"scores": [7.0, 3.0]}', "rewards: Field required", id="no-rewards"),
        pytest.param(
            b'{"rewards": null}', "rewards: Input should be a valid array", id="null-list"
        ),
        pytest.param(b'{"rewards": [7.0]}', "1 rewards for 2 queries", id="short"),
        pytest.param(b'{"rewards": [7.0, 3.0, 1.0]}', "3 rewards for 2 queries", id="long"),
        pytest.param(b'{"rewards": ["7", 3.0]}', "rewards.0: Input should be", id="text"),
        pytest.param(b'{"rewards": [7.0, null]}', "rewards.1: Input should be", id="null-item"),
        pytest.param(b'{"rewards": [true, 3.0]}', "rewards.0: Input should be", id="bool"),
        pytest.param(
            b'{"rewards": [7.0, 3.0], "extra_logs": {"icrm_failed": [0.0]}}',
            "1 extra_logs.icrm_failed for 2 queries",
            id="short-failed",
        ),
    ],
)
def test_a_malformed_200_is_one_engine_error(body, problem):
    def handle(conn: socket.socket) -> None:
        conn.sendall(answer("200 OK", body))

    with http_server(handle) as url, pytest.raises(EngineError) as info:
        ICRMReward(endpoint=url, timeout=10)(["q", "r"], ["a", "b"])
    message = str(info.value)
    assert message.startswith(f"reward endpoint {url}/get_reward: not a /get_reward answer: ")
    assert problem in message and "\n" not in message
