"""How the local engine orders its work on one llama.cpp context: a decode step waits for
every sequence in its decoding loop, and prompt work goes before a waiting step. The
step function here records batches instead of calling llama.cpp: what is under test is
the scheduling, which is the same for any step function."""

import threading
import time

import numpy as np

from icrm_sgl.engines.local.batcher import ContextGate, StepBatcher


def _recording_batcher(decoding: list[int], wait_s: float) -> tuple[StepBatcher, list]:
    batches: list[list[int]] = []

    def run(tokens, positions, seqs):
        batches.append(seqs.tolist())
        return np.zeros((len(tokens), 4), dtype=np.float32)

    return StepBatcher(run, lambda: decoding[0], wait_s=wait_s), batches


def test_a_step_waits_for_every_decoding_sequence_however_slow():
    batcher, batches = _recording_batcher([3], wait_s=30.0)
    threads = [threading.Thread(target=batcher.step, args=(seq, 7, 0)) for seq in (2, 0)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # 100 times the old fixed wait
    assert batches == []
    batcher.step(1, 7, 0)
    for thread in threads:
        thread.join(timeout=10)
    assert batches == [[0, 1, 2]]  # one step, in sequence order


def test_a_sequence_leaving_its_loop_releases_the_waiting_step_at_once():
    decoding = [2]
    batcher, batches = _recording_batcher(decoding, wait_s=30.0)
    thread = threading.Thread(target=batcher.step, args=(0, 7, 0))
    start = time.monotonic()
    thread.start()
    time.sleep(0.1)
    decoding[0] = 1
    batcher.poke()
    thread.join(timeout=10)
    assert batches == [[0]]
    assert time.monotonic() - start < 5


def test_the_safety_wait_bounds_a_step_whose_sequence_never_comes():
    batcher, batches = _recording_batcher([2], wait_s=0.05)
    batcher.step(0, 7, 0)
    assert batches == [[0]]


def test_prompt_work_queued_before_a_step_gets_the_context_first():
    gate = ContextGate()
    order: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def hold():
        with gate.prompt():
            holding.set()
            release.wait(10)
            order.append("first prompt")

    def use(kind: str):
        with getattr(gate, kind)():
            order.append(kind)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    step = threading.Thread(target=use, args=("step",))
    step.start()
    time.sleep(0.1)  # the step is waiting before the prompt arrives
    prompt = threading.Thread(target=use, args=("prompt",))
    prompt.start()
    time.sleep(0.1)
    release.set()
    for thread in (holder, step, prompt):
        thread.join(timeout=10)
    assert order == ["first prompt", "prompt", "step"]


def test_a_step_gets_the_context_when_no_prompt_work_waits():
    gate = ContextGate()
    with gate.step():
        pass
    with gate.prompt():
        pass
    done = threading.Event()

    def step():
        with gate.step():
            done.set()

    threading.Thread(target=step).start()
    assert done.wait(5)
