"""How the local engine orders its work on one llama.cpp context: prompt work first, a
decode step once every decoding sequence has handed in its token (a bounded wait for the
rest), its sequences in id order. ``tick`` is the whole policy and is tested as a pure
function; the loop around it records batches instead of calling llama.cpp (what is under
test is the scheduling, the same for any step function). No test sleeps: futures and
events order everything."""

import threading

import numpy as np
import pytest

from icrm_sgl.engines.local.scheduler import Plan, Queued, Scheduler, tick
from icrm_sgl.errors import EngineError


def _queued(calls=0, steps=(), decoding=(), waited_s=0.0, wait_s=0.05) -> Queued:
    return Queued(calls, frozenset(steps), frozenset(decoding), waited_s, wait_s)


def test_a_step_waits_for_every_decoding_sequence_however_long():
    assert tick(_queued(steps={2, 0}, decoding={0, 1, 2}, waited_s=0.01)) == Plan(wait_s=0.04)
    plan = tick(_queued(steps={2, 0, 1}, decoding={0, 1, 2}, waited_s=0.01))
    assert plan == Plan(step=(0, 1, 2))  # one step, in sequence order


def test_a_sequence_leaving_its_loop_makes_the_step_complete():
    assert tick(_queued(steps={0}, decoding={0})) == Plan(step=(0,))
    assert tick(_queued(steps={3}, decoding=())) == Plan(step=(3,))


def test_the_wait_for_the_rest_is_bounded():
    plan = tick(_queued(steps={0}, decoding={0, 1}, waited_s=0.05))
    assert plan == Plan(step=(0,), partial=True)


def test_prompt_work_goes_before_a_complete_step():
    assert tick(_queued(calls=2, steps={0, 1}, decoding={0, 1})) == Plan(calls=2)


def test_with_nothing_queued_the_loop_waits_without_bound():
    plan = tick(_queued(decoding={0, 1}))
    assert plan.idle and plan.wait_s is None


def _recording_scheduler(n_slots: int, wait_s: float = 30.0) -> tuple[Scheduler, list]:
    batches: list[list[int]] = []

    def run(tokens, positions, seqs):
        batches.append(seqs.tolist())
        return np.arange(len(tokens), dtype=np.float32)[:, None] + seqs[:, None]

    return Scheduler(run, n_slots=n_slots, wait_s=wait_s), batches


def test_the_loop_runs_queued_prompt_work_then_one_step_of_every_decoding_sequence():
    scheduler, batches = _recording_scheduler(3)
    order: list[str] = []
    release = threading.Event()
    try:
        with scheduler.decoding(0), scheduler.decoding(1), scheduler.decoding(2):
            holding = scheduler.submit_call(release.wait, 10)  # keeps the loop busy
            steps = {seq: scheduler.submit_step(seq, 7, 5) for seq in (2, 0, 1)}
            later = scheduler.submit_call(order.append, "prompt")
            release.set()
            rows = {seq: future.result(10) for seq, future in steps.items()}
        assert holding.result(10) and later.done()
        assert order == ["prompt"] and batches == [[0, 1, 2]]
        assert {seq: float(row[0]) for seq, row in rows.items()} == {0: 0.0, 1: 2.0, 2: 4.0}
        assert (scheduler.steps, scheduler.tokens, scheduler.partial_steps) == (1, 3, 0)
    finally:
        scheduler.stop()


def test_a_sequence_leaving_its_loop_releases_the_waiting_step():
    scheduler, batches = _recording_scheduler(2)
    try:
        with scheduler.decoding(0):
            with scheduler.decoding(1):
                step = scheduler.submit_step(0, 7, 0)
            step.result(10)  # the 30 s wait did not run out: 1 left
        assert batches == [[0]] and scheduler.partial_steps == 0
    finally:
        scheduler.stop()


def test_a_failing_step_fails_every_sequence_in_it_and_the_loop_goes_on():
    def run(tokens, positions, seqs):
        raise EngineError("boom")

    scheduler = Scheduler(run, n_slots=2)
    try:
        with scheduler.decoding(0), scheduler.decoding(1):
            futures = [scheduler.submit_step(seq, 7, 0) for seq in (0, 1)]
            for future in futures:
                with pytest.raises(EngineError, match="boom"):
                    future.result(10)
        assert scheduler.call(sum, [1, 2]) == 3
    finally:
        scheduler.stop()
    with pytest.raises(EngineError, match="closed"):
        scheduler.submit_call(sum, [1])


def test_slots_prefer_the_runs_last_and_drain_waits_for_every_one():
    scheduler, _ = _recording_scheduler(2)

    def check() -> None:
        if scheduler.closing:
            raise EngineError("closed")

    try:
        assert scheduler.take(1, check) == 1 and scheduler.take(1, check) == 0
        drained = threading.Thread(target=scheduler.drain)
        drained.start()
        scheduler.give(1)
        scheduler.give(0)
        drained.join(10)
        assert not drained.is_alive() and not scheduler.drain()  # the second is a no-op
        with pytest.raises(EngineError, match="closed"):
            scheduler.take(None, check)
    finally:
        scheduler.stop()
