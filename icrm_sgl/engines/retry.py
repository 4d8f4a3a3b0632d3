"""The one retry policy for anything that answers "busy": a hosted API's 429 / 5xx, an
sglang server or router's 503 (no worker ready, circuit breaker open), a refused or lost
connection. Retried with exponential back-off and full jitter, or after the server's own
``Retry-After``, within the request's time budget: a wait that would end past the budget
is not started, and the error goes to the caller at once.

Health polling (a launched server until it is ready, a router until it lists its
workers) uses the same library: ``poll_until``, a bounded wait with growing pauses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

import tenacity
from tenacity.stop import stop_base

from icrm_sgl.errors import EngineError

T = TypeVar("T")

#: Longest ``Retry-After`` honoured, in seconds (a server asking for more gets this).
MAX_RETRY_AFTER = 60.0


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _busy(exc: BaseException) -> bool:
    return isinstance(exc, EngineError) and exc.retryable


@dataclass(frozen=True)
class RetryPolicy:
    """Tries per request, back-off bounds and the time budget of all tries together."""

    #: None: as many tries as the budget allows (then a budget is required).
    max_attempts: int | None = 5
    base: float = 0.5
    cap: float = 8.0
    #: Seconds every try and wait of one request may take together (None: no bound).
    budget: float | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts is None and self.budget is None:
            raise ValueError("a retry policy needs max_attempts or a budget")

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The server's ``Retry-After`` when it sent one, else full-jitter back-off."""
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after", None)
        if asked is not None:
            return min(asked, MAX_RETRY_AFTER)
        return tenacity.wait_random_exponential(multiplier=self.base, max=self.cap)(state)

    def call(self, request: Callable[[], T]) -> tuple[T, int]:
        """The result and how many tries it took; a busy error once the tries or the
        budget run out (saying how many tries), any other error at once."""
        stops: list[stop_base] = []
        if self.max_attempts is not None:
            stops.append(tenacity.stop_after_attempt(self.max_attempts))
        if self.budget is not None:
            stops.append(tenacity.stop_before_delay(self.budget))
        stop = tenacity.stop_any(*stops)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_busy), stop=stop, wait=self._wait, sleep=self.sleep
        )
        try:
            for attempt in retrying:
                with attempt:
                    result = request()
                outcome = attempt.retry_state.outcome
                if outcome is not None and not outcome.failed:
                    return result, attempt.retry_state.attempt_number
        except tenacity.RetryError as exc:
            last = exc.last_attempt
            error = last.exception()
            tries = last.attempt_number
            raise EngineError(
                f"{error} (gave up after {tries} attempt{'s' if tries > 1 else ''})"
            ) from error
        raise AssertionError("unreachable: tenacity yields at least one attempt")


def poll_until(
    probe: Callable[[float], T],
    ready: Callable[[T], bool],
    timeout: float,
    gave_up: Callable[[T], BaseException],
    *,
    first: float = 0.1,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``probe(seconds_left)`` until ``ready`` says yes to what it returned, pausing
    ``first`` seconds and doubling up to ``interval``; past the deadline, ``gave_up(last)``.

    An error from ``probe`` (the process exited, Ctrl-C) ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    backoff = tenacity.wait_exponential(multiplier=first, max=interval)

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda result: not ready(result)),
        stop=lambda _: left() <= 0,
        wait=lambda state: min(backoff(state), left()),
        sleep=sleep,
    )
    try:
        return retrying(lambda: probe(left()))
    except tenacity.RetryError as exc:
        raise gave_up(exc.last_attempt.result()) from None
