"""Rewards from a running ``icrm-sgl serve`` over OpenRLHF's ``/get_reward``: batched
requests, ``429`` / ``503`` retried by the one busy-retry policy (``engines.retry``:
``Retry-After`` or a jittered back-off), and every request of a call bounded by one
deadline, so a training step never waits forever."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from icrm_sgl.engines.hosted.base import connection_error, status_error
from icrm_sgl.engines.retry import RetryPolicy
from icrm_sgl.errors import EngineError
from icrm_sgl.integrations.outcome import Failure, Outcome

#: Statuses that mean "busy or going away, ask again".
_RETRY = (429, 503)
#: Tries per request; the call's ``timeout`` bounds them too.
_MAX_ATTEMPTS = 20


@dataclass
class RewardEndpoint:
    """A ``/get_reward`` URL (or the server's base URL) and how to talk to it."""

    url: str
    api_key: str | None = None
    batch_size: int = 32
    timeout: float = 600.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if not self.url.endswith("/get_reward"):
            self.url += "/get_reward"
        self.api_key = self.api_key or os.environ.get("ICRM_API_KEY")
        self.where = f"reward endpoint {self.url}"
        self._session = requests.Session()

    def rewards(self, pairs: Sequence[tuple[str, str]]) -> list[Outcome]:
        """A reward or an error message per (prompt, response), in order; ``EngineError``
        when the server cannot be reached or stays busy past the timeout."""
        deadline = time.monotonic() + self.timeout
        outcomes: list[Outcome] = []
        size = max(1, self.batch_size)
        while len(outcomes) < len(pairs):
            chunk = list(pairs[len(outcomes) : len(outcomes) + size])
            reply = self._post(chunk, deadline)
            if reply.status_code == 413 and size > 1:
                size //= 2  # more examples than the server's queue holds: smaller requests
                continue
            outcomes += self._read(chunk, reply, deadline)
        return outcomes

    def _read(
        self, chunk: list[tuple[str, str]], reply: requests.Response, deadline: float
    ) -> list[Outcome]:
        """Rewards from a 200; a 500 or 422 that names examples fails those and re-sends
        the others; anything else is an ``EngineError``."""
        body = _json(reply)
        if reply.status_code == 200:
            failed = body.get("extra_logs", {}).get("icrm_failed") or [0.0] * len(chunk)
            return [
                Failure("no verdict (the server answered its --failed-reward)") if bad else float(r)
                for r, bad in zip(body["rewards"], failed, strict=True)
            ]
        named = _named_failures(body)
        if reply.status_code not in (422, 500) or not named:
            raise status_error(reply.status_code, reply.text, self.where, self.api_key)
        rest = [i for i in range(len(chunk)) if i not in named]
        others = [chunk[i] for i in rest]
        again = self._read(others, self._post(others, deadline), deadline) if rest else []
        bad_input = reply.status_code == 422
        outcomes: dict[int, Outcome] = {i: Failure(m, bad_input) for i, m in named.items()}
        outcomes.update(zip(rest, again, strict=True))
        return [outcomes[i] for i in range(len(chunk))]

    def _post(self, chunk: list[tuple[str, str]], deadline: float) -> requests.Response:
        """One request, retried under the busy-retry policy while the server is busy or
        unreachable, until ``deadline``."""
        body = {"query": [p + r for p, r in chunk], "prompts": [p for p, _ in chunk]}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

        def once() -> requests.Response:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineError(f"{self.where}: no answer within {self.timeout:g} s")
            headers["X-ICRM-Deadline"] = f"{remaining:.3f}"
            try:
                reply = self._session.post(self.url, json=body, headers=headers, timeout=remaining)
            except requests.RequestException as exc:
                raise connection_error(exc, self.where) from exc
            if reply.status_code in _RETRY:
                retry_after = reply.headers.get("Retry-After")
                raise status_error(
                    reply.status_code, reply.text, self.where, self.api_key, retry_after
                )
            return reply

        budget = max(0.0, deadline - time.monotonic())
        policy = RetryPolicy(_MAX_ATTEMPTS, budget=budget, sleep=self.sleep)
        return policy.call(once)[0]

    def close(self) -> None:
        self._session.close()


def _json(reply: requests.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _named_failures(body: dict[str, Any]) -> dict[int, str]:
    """Example index -> message, from a 500's ``failures`` or a 422's ``problems``."""
    named = {f.get("index"): f.get("error") for f in body.get("failures", [])}
    named.update({p.get("example"): p.get("message") for p in body.get("problems", [])})
    return {i: str(m) for i, m in named.items() if isinstance(i, int)}
