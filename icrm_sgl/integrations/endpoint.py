"""Rewards from a running ``icrm-sgl serve`` over OpenRLHF's ``/get_reward``: batched
requests, ``429`` / ``503`` retried by the one busy-retry policy (``engines.retry``:
``Retry-After`` or a jittered back-off), and the whole call bounded by one deadline, so a
training step never waits forever.

A socket timeout bounds each read, not an answer: a server that sends a byte now and then
would hold the call for as long as it likes. So every exchange runs under a watchdog that
shuts its connection at the deadline (the standard library's ``http.client`` gives the
socket to shut; ``requests`` hides it)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from icrm_sgl.engines.hosted.base import connection_error, status_error
from icrm_sgl.engines.retry import RetryPolicy
from icrm_sgl.errors import EngineError
from icrm_sgl.integrations.outcome import Failure, Outcome
from icrm_sgl.options import EndpointSettings

#: Statuses that mean "busy or going away, ask again".
_RETRY = (429, 503)
#: Tries per request; the call's ``timeout`` bounds them too.
_MAX_ATTEMPTS = 20


class _Answer(NamedTuple):
    """One HTTP answer, read in full."""

    status: int
    retry_after: str | None
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Logs(BaseModel):
    """``extra_logs`` of a ``/get_reward`` answer: which queries got no verdict."""

    model_config = ConfigDict(strict=True)

    icrm_failed: list[float] | None = None


class _RewardReply(BaseModel):
    """OpenRLHF's ``/get_reward`` answer: one number per query (other keys are ignored)."""

    model_config = ConfigDict(strict=True)

    rewards: list[float]
    extra_logs: _Logs | None = None


class RewardEndpoint:
    """A ``/get_reward`` URL and how to talk to it (``EndpointSettings``)."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.url = settings.endpoint
        self.api_key = settings.api_key or os.environ.get("ICRM_API_KEY")
        self.where = f"reward endpoint {self.url}"

    def rewards(self, pairs: Sequence[tuple[str, str]]) -> list[Outcome]:
        """A reward or an error message per (prompt, response), in order; ``EngineError``
        when the server cannot be reached, stays busy or answers past the timeout, or
        answers something other than rewards."""
        deadline = time.monotonic() + self.settings.timeout
        outcomes: list[Outcome] = []
        size = self.settings.batch_size
        while len(outcomes) < len(pairs):
            chunk = list(pairs[len(outcomes) : len(outcomes) + size])
            answer = self._post(chunk, deadline)
            if answer.status == 413 and size > 1:
                size //= 2  # more examples than the server's queue holds: smaller requests
                continue
            outcomes += self._read(chunk, answer, deadline)
        return outcomes

    def _read(
        self, chunk: list[tuple[str, str]], answer: _Answer, deadline: float
    ) -> list[Outcome]:
        """Rewards from a 200; a 500 or 422 that names examples fails those and re-sends
        the others; anything else is an ``EngineError``."""
        if answer.status == 200:
            return self._rewards(answer, len(chunk))
        named = _named_failures(_json_object(answer.body))
        if answer.status not in (422, 500) or not named:
            raise status_error(answer.status, answer.text, self.where, self.api_key)
        rest = [i for i in range(len(chunk)) if i not in named]
        others = [chunk[i] for i in rest]
        again = self._read(others, self._post(others, deadline), deadline) if rest else []
        bad_input = answer.status == 422
        outcomes: dict[int, Outcome] = {i: Failure(m, bad_input) for i, m in named.items()}
        outcomes.update(zip(rest, again, strict=True))
        return [outcomes[i] for i in range(len(chunk))]

    def _rewards(self, answer: _Answer, count: int) -> list[Outcome]:
        """The ``count`` rewards of a 200, checked; an answer of another shape is an
        ``EngineError`` (a wrong number would become a training signal)."""
        try:
            reply = _RewardReply.model_validate_json(answer.body)
        except ValidationError as exc:
            raise self._malformed(_first_problem(exc)) from None
        logs = reply.extra_logs or _Logs()
        failed = [0.0] * count if logs.icrm_failed is None else logs.icrm_failed
        for key, values in (("rewards", reply.rewards), ("extra_logs.icrm_failed", failed)):
            if len(values) != count:
                raise self._malformed(f"{len(values)} {key} for {count} queries")
        return [
            Failure("no verdict (the server answered its --failed-reward)") if bad else reward
            for reward, bad in zip(reply.rewards, failed, strict=True)
        ]

    def _malformed(self, problem: str) -> EngineError:
        return EngineError(f"{self.where}: not a /get_reward answer: {problem}")

    def _post(self, chunk: list[tuple[str, str]], deadline: float) -> _Answer:
        """One request, retried under the busy-retry policy while the server is busy or
        unreachable, until ``deadline``."""
        body = json.dumps({"query": [p + r for p, r in chunk], "prompts": [p for p, _ in chunk]})
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"

        def once() -> _Answer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._too_late()
            headers["X-ICRM-Deadline"] = f"{remaining:.3f}"
            try:
                answer = _exchange(self.url, body.encode("utf-8"), headers, deadline)
            except TimeoutError as exc:
                raise self._too_late() from exc
            except (OSError, http.client.HTTPException) as exc:
                raise connection_error(exc, self.where) from exc
            if answer.status in _RETRY:
                raise status_error(
                    answer.status, answer.text, self.where, self.api_key, answer.retry_after
                )
            return answer

        budget = max(0.0, deadline - time.monotonic())
        policy = RetryPolicy(_MAX_ATTEMPTS, budget=budget)
        return policy.call(once)[0]

    def _too_late(self) -> EngineError:
        return EngineError(f"{self.where}: no answer within {self.settings.timeout:g} s")


def _exchange(url: str, body: bytes, headers: dict[str, str], deadline: float) -> _Answer:
    """POST ``body`` and read the whole answer by ``deadline``, else ``TimeoutError``: a
    watchdog shuts the socket then, whichever read is waiting (headers or a trickling
    body); connecting is bounded by the socket timeout, set to the time left."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    left = deadline - time.monotonic()
    connection = kind(parts.hostname or "", parts.port, timeout=max(1e-3, left))
    cut = threading.Event()
    watchdog = threading.Timer(max(0.0, left), _cut, (connection, cut))
    watchdog.daemon = True
    watchdog.start()
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        answer = _Answer(response.status, response.getheader("Retry-After"), response.read())
    except (OSError, http.client.HTTPException) as exc:
        if cut.is_set():
            raise TimeoutError("the deadline passed") from exc
        raise
    finally:
        watchdog.cancel()
        connection.close()
    if cut.is_set():  # a shut socket can also read as the end of the headers
        raise TimeoutError("the deadline passed")
    return answer


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """Shut the connection's socket, which wakes a read blocked on it in another thread."""
    cut.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # closed meanwhile
            sock.shutdown(socket.SHUT_RDWR)


def _json_object(body: bytes) -> dict[str, Any]:
    """An error answer's JSON object, or nothing when it has none."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _named_failures(body: dict[str, Any]) -> dict[int, str]:
    """Example index -> message, from a 500's ``failures`` or a 422's ``problems``."""
    named: dict[Any, Any] = {}
    for key, index, message in (("failures", "index", "error"), ("problems", "example", "message")):
        items = body.get(key)
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict):
                named[item.get(index)] = item.get(message)
    return {i: str(m) for i, m in named.items() if isinstance(i, int) and not isinstance(i, bool)}


def _first_problem(exc: ValidationError) -> str:
    """A reply's first problem in a few words: where in the JSON, and what is wrong."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
