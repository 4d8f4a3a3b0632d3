"""Calls run on daemon threads, results yielded as they complete.

Hosted requests can wait minutes on a busy server. ``concurrent.futures`` joins its
workers at interpreter exit, so an interrupted batch would wait for every request still
in flight; daemon threads let Ctrl-C / SIGTERM end the process at once (the server sees
the connections close) while the caller still prints its summary.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Seconds between checks for a signal while waiting for the next result.
_POLL = 0.2


def completed(calls: list[Callable[[], T]], threads: int) -> Iterator[T]:
    """Each call's result in completion order; a call's exception is raised here. Calls not
    started when the consumer stops (or is interrupted) never start."""
    todo: queue.SimpleQueue[Callable[[], T]] = queue.SimpleQueue()
    for call in calls:
        todo.put(call)
    done: queue.Queue[tuple[bool, T | BaseException]] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                call = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((True, call()))
            except BaseException as exc:  # handed to the consumer, raised there
                done.put((False, exc))

    for _ in range(max(1, min(threads, len(calls)))):
        threading.Thread(target=work, name="icrm-request", daemon=True).start()
    try:
        for _ in calls:
            ok, value = _next(done)
            if not ok:
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()


def _next(done: queue.Queue[tuple[bool, T | BaseException]]) -> tuple[bool, T | BaseException]:
    while True:  # short waits, so that a signal is handled at once
        try:
            return done.get(timeout=_POLL)
        except queue.Empty:
            continue
