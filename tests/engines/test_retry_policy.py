"""The one busy-retry policy: the server's Retry-After, back-off bounds, the time budget,
and errors that are not "busy" going through at once (no server: the policy is timing)."""

from __future__ import annotations

import time

import pytest

from icrm_sgl.engines.retry import RetryPolicy, poll_until, retry_after_seconds
from icrm_sgl.errors import EngineError


def flaky(errors):
    """A request that raises ``errors`` in turn, then answers "ok"."""
    pending = list(errors)

    def request():
        if pending:
            raise pending.pop(0)
        return "ok"

    return request


def test_the_servers_retry_after_is_the_wait():
    waits = []
    policy = RetryPolicy(max_attempts=3, sleep=waits.append)
    busy = EngineError("HTTP 503", retryable=True, retry_after=2.5)
    assert policy.call(flaky([busy, busy])) == ("ok", 3)
    assert waits == [2.5, 2.5]


def test_without_retry_after_the_back_off_is_jittered_and_capped():
    waits = []
    policy = RetryPolicy(max_attempts=6, base=0.5, cap=1.0, sleep=waits.append)
    busy = EngineError("HTTP 429", retryable=True)
    assert policy.call(flaky([busy] * 5)) == ("ok", 6)
    assert len(waits) == 5 and all(0 <= w <= 1.0 for w in waits)


def test_a_wait_past_the_budget_is_not_started():
    waits = []
    policy = RetryPolicy(max_attempts=5, budget=1.0, sleep=waits.append)
    busy = EngineError("HTTP 503", retryable=True, retry_after=30)
    with pytest.raises(EngineError, match=r"HTTP 503 \(gave up after 1 attempt\)"):
        policy.call(flaky([busy, busy]))
    assert waits == []


def test_without_a_count_the_budget_alone_bounds_the_tries():
    """The sglang engine's default: a router's ``Retry-After`` is honoured for as long as
    the budget lasts, however many tries that takes."""
    waits = []
    policy = RetryPolicy(max_attempts=None, budget=60.0, sleep=waits.append)
    busy = EngineError("HTTP 503", retryable=True, retry_after=1)
    assert policy.call(flaky([busy] * 12)) == ("ok", 13)  # past the default count of 5
    assert waits == [1] * 12
    started = time.monotonic()
    slept = RetryPolicy(max_attempts=None, budget=0.35)
    quick = EngineError("HTTP 503", retryable=True, retry_after=0.1)
    with pytest.raises(EngineError, match=r"gave up after [2-4] attempts"):
        slept.call(flaky([quick] * 100))
    assert time.monotonic() - started < 1.0  # the budget, plus one late wake-up at most
    with pytest.raises(ValueError, match="max_attempts or a budget"):
        RetryPolicy(max_attempts=None)


def test_an_error_that_is_not_busy_goes_through_at_once():
    policy = RetryPolicy(sleep=lambda s: pytest.fail("slept"))
    with pytest.raises(EngineError, match=r"^HTTP 400$"):
        policy.call(flaky([EngineError("HTTP 400")]))


@pytest.mark.parametrize(
    ("header", "seconds"), [("3", 3.0), ("0", 0.0), (None, None), ("soon", None)]
)
def test_retry_after_header_forms(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date_in_the_past_is_no_wait():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# -- health polling ------------------------------------------------------------------------


def test_polling_pauses_grow_to_the_interval_and_stop_when_ready():
    waits, answers = [], iter([0, 0, 0, 0, 0, 2])
    found = poll_until(
        lambda left: next(answers), lambda n: n >= 2, 60, RuntimeError,
        first=0.1, interval=0.5, sleep=waits.append,
    )  # fmt: skip
    assert found == 2
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_polling_past_the_deadline_gives_up_with_the_last_answer():
    seen = []
    with pytest.raises(TimeoutError, match=r"^last: 7$"):
        poll_until(
            lambda left: seen.append(left) or 7, lambda n: False, 0.3,
            lambda n: TimeoutError(f"last: {n}"), first=0.05, interval=0.05,
        )  # fmt: skip
    assert len(seen) >= 2 and seen[0] <= 0.3 and seen[-1] < 0.1


def test_an_error_from_the_probe_ends_the_wait_at_once():
    def probe(left):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        poll_until(probe, bool, 60, RuntimeError, sleep=lambda s: pytest.fail("slept"))
