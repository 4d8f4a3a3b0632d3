"""The queue in front of the engine."""

import threading

from icrm_sgl.serve.batcher import Batcher
from icrm_sgl.serve.metrics import Metrics

TURNS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def test_examples_given_up_by_their_client_free_their_queue_room_standin():
    """A cancelled (timed-out or disconnected) example must not keep a later request out.
    The engine is a stand-in that blocks until released: timing the real one is the
    server tests' job."""
    started, release = threading.Event(), threading.Event()

    class Blocking:
        def judge_batch(self, examples, **gen):
            started.set()
            release.wait(30)
            return iter(())

    batcher = Batcher({"individual": Blocking()}, {}, Metrics(), max_queue=2, max_batch=1)
    try:
        first = batcher.submit(["individual"], [{"conversation": TURNS}], deadline=1e12)
        started.wait(30)  # the first example is in the engine
        waiting = batcher.submit(["individual"] * 2, [{"conversation": TURNS}] * 2, 1e12)
        for item in waiting:
            item.future.cancel()
        assert batcher.depth()["queue_depth"] == 0
        batcher.submit(["individual"] * 2, [{"conversation": TURNS}] * 2, 1e12)
    finally:
        release.set()
        batcher.close(join_timeout=30)
    assert first[0].future.result(timeout=30).error == "engine error: no result returned"
