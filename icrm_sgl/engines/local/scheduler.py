"""The one loop that owns a llama.cpp context: every call into it runs on its thread.

Program runs hand in work and wait on a future: prompt work (any call into the context:
a prompt chunk, a cut, a state save or restore) and one-token decode steps. Each
iteration takes what is queued, asks ``tick`` what to run, runs it and resolves the
futures, as llama.cpp's server (``update_slots``) and sglang's ``Scheduler`` do. The
loop also keeps the pool of KV sequences (slots) that runs take for a call, under the
same condition.

The policy (``tick``): queued prompt work runs first, in arrival order (the sequences
behind it then join the next step instead of waiting one more step); a step runs once
every sequence in its decoding loop has handed in its token, or once the loop has waited
``wait_s`` for the rest, and takes its sequences in id order. On the CPU a token's share
of a step falls with the step's width only when its sequence ids are consecutive
(llama.cpp splits the rest into several batches), and with eight sequences the others'
per-token Python work outlasts a short wait. Prompt work and steps stay separate
decodes: a step's rows are then the same bits whatever prompt work other runs do.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from icrm_sgl.errors import EngineError

#: Runs one step: (tokens, positions, sequence ids) -> one logits row per token.
StepFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Queued:
    """What the loop sees when it decides: the work waiting and who is decoding."""

    #: Prompt work items waiting, in arrival order.
    calls: int
    #: Sequences that have handed in a step token.
    steps: frozenset[int]
    #: Sequences in their decoding loop: a full step has a token of each.
    decoding: frozenset[int]
    #: Seconds the loop has been free while a step token waited.
    waited_s: float
    #: The bound of that wait.
    wait_s: float


@dataclass(frozen=True)
class Plan:
    """What one iteration runs: the first ``calls`` prompt work items, then a step of
    ``step``'s sequences; with neither, the loop waits for news, at most ``wait_s``
    seconds (None: no bound)."""

    calls: int = 0
    step: tuple[int, ...] = ()
    #: The step leaves out a decoding sequence (the wait ran out).
    partial: bool = False
    wait_s: float | None = None

    @property
    def idle(self) -> bool:
        return not self.calls and not self.step


def tick(queued: Queued) -> Plan:
    """The scheduling policy: prompt work first; a step once every decoding sequence has
    handed in (or the wait ran out), in sequence order; else wait for the rest."""
    if queued.calls:
        return Plan(calls=queued.calls)
    if not queued.steps:
        return Plan()
    complete = queued.decoding <= queued.steps
    if complete or queued.waited_s >= queued.wait_s:
        return Plan(step=tuple(sorted(queued.steps)), partial=not complete)
    return Plan(wait_s=queued.wait_s - queued.waited_s)


@dataclass
class _Call:
    fn: Callable[..., Any]
    args: tuple
    future: Future


@dataclass
class _StepToken:
    token: int
    pos: int
    future: Future


class Scheduler:
    """The thread that owns a llama.cpp context, its work queue and its slot pool."""

    def __init__(self, run_step: StepFn, *, n_slots: int, wait_s: float = 0.05) -> None:
        self._run_step = run_step
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._calls: deque[_Call] = deque()
        self._steps: dict[int, _StepToken] = {}
        self._decoding: set[int] = set()
        #: When the loop became free with a step token waiting (None: none waits).
        self._waiting_since: float | None = None
        self._stopping = False
        self.n_slots = n_slots
        self._free = set(range(n_slots))
        #: Set by ``drain``: no sequence is handed out any more.
        self.closing = False
        #: (steps, tokens) decoded so far: tokens / steps is the mean step width.
        self.steps = 0
        self.tokens = 0
        #: Seconds spent in steps, and steps run at each width.
        self.seconds = 0.0
        self.widths: Counter[int] = Counter()
        #: Steps run before every decoding sequence had handed in (the wait ran out).
        self.partial_steps = 0
        # A thread of its own rather than an executor: closing at interpreter exit must work.
        self._thread = threading.Thread(target=self._loop, name="llama.cpp", daemon=True)
        self._thread.start()

    # -- work ----------------------------------------------------------------------------

    def submit_call(self, fn: Callable[..., _T], *args) -> Future:
        """Queue ``fn(*args)`` as prompt work; its future holds the result."""
        future: Future = Future()
        with self._cond:
            self._check_running()
            self._calls.append(_Call(fn, args, future))
            self._cond.notify_all()
        return future

    def call(self, fn: Callable[..., _T], *args) -> _T:
        """Run ``fn(*args)`` on the loop's thread (at once when already on it)."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        return self.submit_call(fn, *args).result()

    def submit_step(self, seq: int, token: int, pos: int) -> Future:
        """Hand in ``token`` at ``pos`` of ``seq`` for the next step; the future holds the
        logits row after it."""
        future: Future = Future()
        with self._cond:
            self._check_running()
            if seq in self._steps:
                raise EngineError(f"sequence {seq} already waits for a step")
            self._steps[seq] = _StepToken(token, pos, future)
            if self._waiting_since is None:
                self._waiting_since = time.monotonic()
            self._cond.notify_all()
        return future

    def step(self, seq: int, token: int, pos: int) -> np.ndarray:
        """The logits after ``token`` at ``pos`` in ``seq``, decoded in company."""
        return self.submit_step(seq, token, pos).result()

    @contextmanager
    def decoding(self, seq: int) -> Iterator[None]:
        """Count ``seq`` among the sequences the next step waits for."""
        with self._cond:
            self._decoding.add(seq)
        try:
            yield
        finally:
            with self._cond:
                self._decoding.discard(seq)
                self._cond.notify_all()

    def stop(self) -> None:
        """End the loop once the queued work has run; later work is refused."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _check_running(self) -> None:
        if self._stopping:
            raise EngineError("the llama.cpp context is closed")

    # -- slots ---------------------------------------------------------------------------

    def take(self, prefer: int | None, check: Callable[[], None], *, only: bool = False) -> int:
        """A free sequence, ``prefer`` when free (with ``only``, that one: wait for it);
        ``check`` runs before each wait and may raise."""
        with self._cond:
            while True:
                check()
                if prefer in self._free or (self._free and not only):
                    break
                self._cond.wait()
            seq = prefer if prefer in self._free else min(self._free)
            self._free.remove(seq)
            return seq

    def give(self, seq: int) -> None:
        """Hand ``seq`` back to the pool."""
        with self._cond:
            self._free.add(seq)
            self._cond.notify_all()

    def drain(self) -> bool:
        """Set ``closing`` (``take``'s check then refuses) and wait until every sequence is
        back; False when another call did so first."""
        with self._cond:
            if self.closing:
                return False
            self.closing = True
            self._cond.notify_all()
            while len(self._free) < self.n_slots:
                self._cond.wait()
            return True

    # -- the loop ------------------------------------------------------------------------

    def _queued(self, now: float) -> Queued:
        since = self._waiting_since
        return Queued(
            calls=len(self._calls),
            steps=frozenset(self._steps),
            decoding=frozenset(self._decoding),
            waited_s=0.0 if since is None else now - since,
            wait_s=self.wait_s,
        )

    def _next(self) -> tuple[Plan, list[_Call], list[tuple[int, _StepToken]]] | None:
        """Wait for runnable work and take it off the queue; None once stopped."""
        with self._cond:
            while True:
                plan = tick(self._queued(time.monotonic()))
                if not plan.idle:
                    break
                if self._stopping and not self._calls and not self._steps:
                    return None
                self._cond.wait(plan.wait_s)
            calls = [self._calls.popleft() for _ in range(plan.calls)]
            steps = [(seq, self._steps.pop(seq)) for seq in plan.step]
            return plan, calls, steps

    def _loop(self) -> None:
        while (taken := self._next()) is not None:
            plan, calls, steps = taken
            for call in calls:
                _resolve(call.future, call.fn, *call.args)
            if steps:
                self._step(steps, plan.partial)
            with self._cond:
                self._waiting_since = time.monotonic() if self._steps else None

    def _step(self, steps: list[tuple[int, _StepToken]], partial: bool) -> None:
        start = time.perf_counter()
        try:
            rows = self._run_step(
                np.array([s.token for _, s in steps], dtype=np.int32),
                np.array([s.pos for _, s in steps], dtype=np.int32),
                np.array([seq for seq, _ in steps], dtype=np.int32),
            )
        except BaseException as exc:  # every sequence in the step gets its failure
            for _, s in steps:
                s.future.set_exception(exc)
        else:
            for (_, s), row in zip(steps, rows, strict=True):
                s.future.set_result(row)
        self.seconds += time.perf_counter() - start
        self.steps += 1
        self.tokens += len(steps)
        self.widths[len(steps)] += 1
        self.partial_steps += partial


def _resolve(future: Future, fn: Callable[..., Any], *args) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # the caller re-raises it
        future.set_exception(exc)
