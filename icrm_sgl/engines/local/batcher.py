"""One llama.cpp decode step for every sequence that is decoding at the same time.

Each program run decodes on its own thread; a thread that needs the next token's logits
hands its token to the ``StepBatcher`` and waits. The step runs once every sequence in
its decoding loop has handed in a token (a safety wait bounds it); whichever waiting
thread gets there first hands the batch to the context's own thread
(``SequenceContext``) and shares out the rows. Waiting for the whole set matters on the
CPU: a token's share of a step falls with the step's width only when the step's
sequence ids are consecutive (llama.cpp splits the rest into several batches), and with
eight sequences the others' per-token Python work outlasts a short wait.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

#: Runs one batch: (tokens, positions, sequence ids) -> one logits row per token.
StepFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class _Request:
    seq: int
    token: int
    pos: int
    row: np.ndarray | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.row is not None or self.error is not None


class ContextGate:
    """The lock around a llama.cpp context, serving prompt work before decode steps.

    A step waits while prompt work is queued: the sequences behind that work then join
    the next step instead of waiting one more step for their turn, so steps run wider
    (on the CPU a step's cost per token falls with its width, and only for sequence ids
    that are consecutive). Everything but a decode step counts as prompt work.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._prompts_waiting = 0

    @contextmanager
    def prompt(self) -> Iterator[None]:
        with self._cond:
            self._prompts_waiting += 1
            try:
                while self._held:
                    self._cond.wait()
            finally:
                self._prompts_waiting -= 1
                self._cond.notify_all()  # a step may wait for this count to fall
            self._held = True
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def step(self) -> Iterator[None]:
        with self._cond:
            while self._held or self._prompts_waiting:
                self._cond.wait()
            self._held = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


class StepBatcher:
    """Gathers one-token decode requests of several sequences into one batch."""

    def __init__(
        self,
        run: StepFn,
        decoding: Callable[[], int],
        gate: ContextGate | None = None,
        wait_s: float = 0.05,
    ) -> None:
        self._run = run
        #: Taken around each step: the context is shared with prompt work.
        self._gate = gate or ContextGate()
        #: How many sequences are in their decoding loop: a full step has one token each.
        self._decoding = decoding
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._running = False
        #: (steps, tokens) decoded so far: tokens / steps is the mean batch width.
        self.steps = 0
        self.tokens = 0
        #: Seconds spent in steps (once the context was free), and steps run at each width.
        self.seconds = 0.0
        self.widths: Counter[int] = Counter()
        #: Steps the safety wait started before every decoding sequence had handed in.
        self.partial_steps = 0

    def step(self, seq: int, token: int, pos: int) -> np.ndarray:
        """The logits after ``token`` at ``pos`` in sequence ``seq``, decoded in company."""
        request = _Request(seq, token, pos)
        batch = self._join(request)
        if batch:
            self._lead(batch)
        if request.error is not None:
            raise request.error
        assert request.row is not None
        return request.row

    def poke(self) -> None:
        """A sequence left its decoding loop: the waiting requests may be complete now."""
        with self._cond:
            self._cond.notify_all()

    def _join(self, request: _Request) -> list[_Request]:
        """Wait until ``request`` is done ([]) or this thread should run a batch (it)."""
        with self._cond:
            self._pending.append(request)
            deadline = time.monotonic() + self.wait_s
            while not request.done:
                if not self._running and request in self._pending:
                    ready = len(self._pending) >= self._decoding()
                    if ready or time.monotonic() >= deadline:
                        self.partial_steps += not ready
                        batch, self._pending = self._pending, []
                        self._running = True
                        return batch
                    self._cond.wait(deadline - time.monotonic())
                else:
                    self._cond.wait()
                    deadline = min(deadline, time.monotonic() + self.wait_s)
            return []

    def _lead(self, batch: list[_Request]) -> None:
        # llama.cpp splits a batch whose sequences are out of order (8 tokens: 70 ms
        # against 52 ms in order, 2 threads here).
        batch.sort(key=lambda r: r.seq)
        try:
            with self._gate.step():
                start = time.perf_counter()
                rows = self._run(
                    np.array([r.token for r in batch], dtype=np.int32),
                    np.array([r.pos for r in batch], dtype=np.int32),
                    np.array([r.seq for r in batch], dtype=np.int32),
                )
                self.seconds += time.perf_counter() - start
            for request, row in zip(batch, rows, strict=True):
                request.row = row
        except BaseException as exc:  # every waiter gets the step's failure
            for request in batch:
                request.error = exc
        finally:
            with self._cond:
                self._running = False
                self.steps += 1
                self.tokens += len(batch)
                self.widths[len(batch)] += 1
                self._cond.notify_all()
