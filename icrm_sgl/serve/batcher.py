"""One bounded queue in front of the engine: requests from every client are cut into
batches for ``ICRM.judge_batch`` by a single worker thread, so concurrent clients share
the engine's prefix cache (and, on an sglang server, its continuous batching).

The queue counts engine calls: an example is one, a pair judged in both orders two (its
runner's ``calls``), for ``max_queue``, ``max_batch``, the depth and ``Retry-After``."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from icrm_sgl.judging.pair_judging import PairJudgement
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.serve.metrics import Metrics

#: What an example's future gets: its verdict, or a pair's reconciled result.
Result = Judgement | PairJudgement
_R = TypeVar("_R", bound=Result)

log = logging.getLogger("uvicorn.error")  # printed with uvicorn's own lines

#: Seconds a batch already in the engine when the drain deadline passes gets to finish:
#: its clients still get their verdicts, and the server keeps listening meanwhile.
ENGINE_GRACE = 10.0


class QueueFull(Exception):
    """The queue has no room for the request's examples (HTTP 429)."""


class ShuttingDown(Exception):
    """The server is draining: no new work, and queued work past the drain deadline is
    dropped (HTTP 503)."""


@dataclass
class Item:
    """One example waiting for (or in) the engine, ``calls`` engine calls; ``future`` gets
    its ``Judgement`` (a pair in both orders: its ``PairJudgement``)."""

    rm_type: str
    example: dict[str, Any]
    deadline: float
    calls: int = 1
    future: Future[Result] = field(default_factory=Future)


class Batcher:
    """Feeds queued examples to one runner per judging mode (an ``ICRM``, or anything with
    its ``judge_batch`` and an optional ``calls`` per example), ``max_batch`` calls at a
    time."""

    def __init__(
        self,
        judges: dict[str, Any],
        gen: dict[str, Any],
        metrics: Metrics,
        max_queue: int = 256,
        max_batch: int = 8,
    ) -> None:
        self.judges = judges
        self.gen = gen
        self.metrics = metrics
        self.max_queue = max_queue
        self.max_batch = max_batch
        self._queue: deque[Item] = deque()
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self._in_engine = 0
        self._drain_deadline: float | None = None
        self._stopped = False
        self._seconds_per_example = 1.0
        self._thread = threading.Thread(target=self._work, name="icrm-batcher", daemon=True)
        self._thread.start()

    # -- client side -------------------------------------------------------------------

    def submit(
        self, rm_types: list[str], examples: list[dict[str, Any]], deadline: float
    ) -> list[Item]:
        """Queue a request's examples together, or refuse all of them."""
        items = [
            Item(rm, {**ex, "id": f"q{next(self._ids)}"}, deadline, self.calls(rm))
            for rm, ex in zip(rm_types, examples, strict=True)
        ]
        with self._cond:
            if self._drain_deadline is not None or self._stopped:
                raise ShuttingDown("the server is shutting down")
            self._purge()
            queued = _load(self._queue)
            if queued + _load(items) > self.max_queue:
                raise QueueFull(f"queue full ({queued}/{self.max_queue} examples)")
            self._queue.extend(items)
            self._cond.notify()
        return items

    def calls(self, rm_type: str) -> int:
        """Engine calls one example of ``rm_type`` takes (two for a pair in both orders)."""
        return int(getattr(self.judges[rm_type], "calls", 1))

    def retry_after(self) -> int:
        """Seconds until what is queued now is likely judged (1-60), for ``Retry-After``."""
        with self._cond:
            waiting = _load(self._queue) + self._in_engine
        return max(1, min(60, round(self._seconds_per_example * waiting)))

    def depth(self) -> dict[str, float]:
        """Queue depth and examples in the engine (engine calls), for /health and /metrics."""
        with self._cond:
            self._purge()
            return {"queue_depth": _load(self._queue), "in_engine": self._in_engine}

    def _purge(self) -> None:
        """Forget examples whose client left or gave up: they must not hold queue room."""
        if any(item.future.cancelled() for item in self._queue):
            self._queue = deque(item for item in self._queue if not item.future.cancelled())

    @property
    def draining(self) -> bool:
        return self._drain_deadline is not None

    def idle(self) -> bool:
        """Nothing queued and nothing in the engine."""
        with self._cond:
            self._purge()
            return not self._queue and not self._in_engine

    def drained(self) -> bool:
        """True once the drain deadline has passed: queued examples will not be judged."""
        return self._drain_deadline is not None and time.monotonic() >= self._drain_deadline

    def overran(self) -> bool:
        """True once the engine's grace after the drain deadline has passed too."""
        return self.engine_wait() <= 0

    def drain_over(self) -> bool:
        """True when a draining server may stop listening: nothing queued or in the engine,
        or the engine overran its grace."""
        return self.draining and (self.idle() or self.overran())

    def abandoned(self, items: list[Item]) -> bool:
        """True when the drain will not judge all of ``items``: past its deadline some of
        them still wait in the queue, or the engine overran its grace."""
        if not self.drained():
            return False
        return self.overran() or any(_queued(item) for item in items)

    def engine_wait(self) -> float:
        """Seconds the batch in the engine may still take: ``ENGINE_GRACE``, less what the
        drain already used of it (once past its deadline)."""
        if self._drain_deadline is None:
            return ENGINE_GRACE
        left = self._drain_deadline + ENGINE_GRACE - time.monotonic()
        return max(0.0, min(ENGINE_GRACE, left))

    # -- shutdown ------------------------------------------------------------------------

    def begin_drain(self, timeout: float) -> None:
        """Refuse new work; keep judging what is queued for ``timeout`` seconds, after
        which queued examples are dropped (the batch in the engine gets its grace)."""
        with self._cond:
            if self._drain_deadline is None:
                self._drain_deadline = time.monotonic() + timeout
            self._cond.notify()

    def close(self, join_timeout: float) -> bool:
        """Drop what is still queued (each gets ``ShuttingDown``), stop the worker after its
        current batch; False when that batch did not finish within ``join_timeout``."""
        with self._cond:
            self._stopped = True
            self._reject_queued()
            self._cond.notify()
        self._thread.join(join_timeout)
        return not self._thread.is_alive()

    def _reject_queued(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(ShuttingDown("the server shut down before judging it"))

    # -- worker --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            started = time.monotonic()
            for rm_type in self.judges:
                group = [item for item in batch if item.rm_type == rm_type]
                if group:
                    self._run(rm_type, group)
            elapsed = time.monotonic() - started
            with self._cond:
                self._in_engine = 0
                self._seconds_per_example = 0.7 * self._seconds_per_example + 0.3 * (
                    elapsed / _load(batch)
                )

    def _next_batch(self) -> list[Item] | None:
        """Up to ``max_batch`` live items (cancelled and expired ones are skipped), or None
        once stopped."""
        with self._cond:
            while True:
                if self.drained():
                    self._reject_queued()
                if self._stopped:
                    return None
                batch = self._take()
                if batch:
                    self._in_engine = _load(batch)
                    return batch
                self._cond.wait(timeout=0.5)

    def _take(self) -> list[Item]:
        """Up to ``max_batch`` calls' worth of items (at least one item, whatever its calls)."""
        batch: list[Item] = []
        calls, now = 0, time.monotonic()
        while self._queue and (not batch or calls + self._queue[0].calls <= self.max_batch):
            item = self._queue.popleft()
            if not item.future.set_running_or_notify_cancel():
                continue  # the client went away or its deadline passed while it waited
            if now >= item.deadline:
                item.future.set_exception(TimeoutError("deadline passed while queued"))
                continue
            batch.append(item)
            calls += item.calls
        return batch

    def _run(self, rm_type: str, group: list[Item]) -> None:
        """One ``judge_batch`` call; every item's future is resolved, whatever happens."""
        by_id = {item.example["id"]: item for item in group}
        done: list[tuple[str, Result]] = []
        try:
            for result in self.judges[rm_type].judge_batch(
                [item.example for item in group], **self.gen
            ):
                item = by_id.pop(result.id, None)
                if item is not None:
                    item.future.set_result(result)
                    done.append((rm_type, result))
        except Exception as exc:  # a crashed batch must not leave clients waiting forever
            log.exception("judge_batch failed")
            for item in by_id.values():
                failed = Judgement(item.example["id"], error=f"engine error: {exc}")
                item.future.set_result(failed)
                done.append((rm_type, failed))
            by_id.clear()
        for item in by_id.values():
            missing = Judgement(item.example["id"], error="engine error: no result returned")
            item.future.set_result(missing)
            done.append((rm_type, missing))
        self.metrics.batch(done, _load(group))


def _load(items: Iterable[Item]) -> int:
    """The engine calls ``items`` take."""
    return sum(item.calls for item in items)


def _queued(item: Item) -> bool:
    """Still waiting for the engine: neither taken into a batch nor finished."""
    return not item.future.running() and not item.future.done()


def client_record(result: _R, client_id: str) -> _R:
    """The judgement under the id the client gave (the queue used its own ids)."""
    return replace(result, id=client_id)
