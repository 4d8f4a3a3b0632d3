"""One llama.cpp decode step for every sequence that is decoding at the same time.

Each program run decodes on its own thread; a thread that needs the next token's logits
hands its token to the ``StepBatcher`` and waits. The step runs as soon as every busy
sequence has handed in a token, or after a short wait for the stragglers; whichever
waiting thread gets there first hands the batch to the context's own thread
(``SequenceContext``) and shares out the rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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


class StepBatcher:
    """Gathers one-token decode requests of several sequences into one batch."""

    def __init__(self, run: StepFn, busy: Callable[[], int], wait_s: float = 0.003) -> None:
        self._run = run
        self._busy = busy
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._running = False
        #: (steps, tokens) decoded so far: tokens / steps is the mean batch width.
        self.steps = 0
        self.tokens = 0

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

    def _join(self, request: _Request) -> list[_Request]:
        """Wait until ``request`` is done ([]) or this thread should run a batch (it)."""
        with self._cond:
            self._pending.append(request)
            deadline = time.monotonic() + self.wait_s
            while not request.done:
                if not self._running and request in self._pending:
                    ready = len(self._pending) >= self._busy()
                    if ready or time.monotonic() >= deadline:
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
            rows = self._run(
                np.array([r.token for r in batch], dtype=np.int32),
                np.array([r.pos for r in batch], dtype=np.int32),
                np.array([r.seq for r in batch], dtype=np.int32),
            )
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
                self._cond.notify_all()
