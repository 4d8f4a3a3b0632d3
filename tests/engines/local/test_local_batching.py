"""Several examples decoded together on the local engine (``-E n_seq=N``): the same
verdicts as one at a time, one failing example never sinks the batch, late arrivals
join the running steps, and closing or interrupting mid-batch is a clean error."""

import json
import threading
import time

import pytest

from icrm_sgl import ICRM
from icrm_sgl.engines.local.engine import LocalBackend, LocalOptions
from icrm_sgl.engines.local.sampling import Sampling
from icrm_sgl.errors import EngineError
from tests.conftest import EXAMPLES as EXAMPLES_DIR

N_CTX = 4096


def _conversation(user: str, reply: str) -> dict:
    return {
        "conversation": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    }


EXAMPLES = [
    {**_conversation("I want to book a flight", "Sure, where do you want to go?"), "id": "a"},
    {**_conversation("Hi", "Hello! How can I help?"), "id": "b"},
    {**_conversation("What is 2+2?", "5"), "id": "c"},
    {**_conversation("I want to book a flight", "Sure, where do you want to go?"), "id": "d"},
]


@pytest.fixture(scope="module")
def batched_backend():
    backend = LocalBackend(LocalOptions(n_ctx=N_CTX, n_seq=4))
    yield backend
    backend.shutdown()


def _public(result) -> str:
    keys = ("probabilities", "expected_score", "field_probabilities", "reward")
    meta = {k: result.meta.get(k) for k in keys}
    return json.dumps({"id": result.id, "verdict": result.verdict, "error": result.error, **meta})


def test_batched_verdicts_are_identical_to_serial_ones(local_backend, batched_backend):
    serial = ICRM(rm_type="individual", num_shots=1, backend=local_backend)
    batched = ICRM(rm_type="individual", num_shots=1, backend=batched_backend)
    runner = batched_backend.runner
    steps, tokens = runner.scheduler.steps, runner.scheduler.tokens
    one = [_public(r) for r in serial.judge_batch(EXAMPLES, max_tokens=16, num_threads=1)]
    many = [_public(r) for r in batched.judge_batch(EXAMPLES, max_tokens=16)]
    assert many == one
    # The decode steps were shared: more tokens than steps.
    assert runner.scheduler.tokens - tokens > runner.scheduler.steps - steps


def _pairwise_examples() -> list[dict]:
    pair = json.loads((EXAMPLES_DIR / "test_pairwise.json").read_text("utf-8"))
    swapped = {
        **pair,
        "conversation_A": pair["conversation_B"],
        "conversation_B": pair["conversation_A"],
    }
    return [{**pair, "id": "ab"}, {**swapped, "id": "ba"}, {**pair, "id": "ab-again"}]


def _rubric_examples() -> list[dict]:
    lines = (EXAMPLES_DIR / "judges" / "helpful_harmless.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize(
    ("judge", "examples"),
    [
        ({"rm_type": "pairwise"}, _pairwise_examples),
        pytest.param(  # a rubric's program: its batching is the pairwise one's
            {"judge": EXAMPLES_DIR / "judges" / "helpful_harmless.toml"},
            _rubric_examples,
            marks=pytest.mark.slow,
        ),
    ],
    ids=["pairwise", "rubric"],
)
def test_batched_pairwise_and_rubric_verdicts_are_identical_to_serial_ones(
    local_backend, batched_backend, judge, examples
):
    batch = examples()
    runs = []
    for backend, threads in ((local_backend, 1), (batched_backend, len(batch))):
        model = ICRM(num_shots=1, backend=backend, **judge)
        runs.append(
            [_public(r) for r in model.judge_batch(batch, max_tokens=12, num_threads=threads)]
        )
    assert all('"error": null' in text for text in runs[0]), runs[0]
    assert runs[1] == runs[0]


def test_an_example_too_long_for_its_sequence_fails_alone(batched_backend):
    model = ICRM(rm_type="individual", num_shots=1, backend=batched_backend)
    huge = {**_conversation("Summarise this.", "word " * 6000), "id": "huge"}
    results = {r.id: r for r in model.judge_batch([EXAMPLES[0], huge, EXAMPLES[1]], max_tokens=20)}
    assert results["a"].ok and results["b"].ok
    assert not results["huge"].ok
    assert "context size" in results["huge"].error and "\n" not in results["huge"].error


def test_a_call_joining_while_another_decodes_shares_its_steps(local_backend, batched_backend):
    first, second = "Q: Name three colours.\nA:", "Q: Name three animals.\nA:"
    greedy = Sampling()
    expected = [
        local_backend.runner.generate(p, max_new_tokens=30, sampling=greedy, ignore_eos=True).text
        for p in (first, second)
    ]
    runner = batched_backend.runner
    out: dict[str, str] = {}

    def run(name, prompt):
        out[name] = runner.generate(
            prompt, max_new_tokens=30, sampling=greedy, ignore_eos=True
        ).text

    steps, tokens = runner.scheduler.steps, runner.scheduler.tokens
    early = threading.Thread(target=run, args=("first", first))
    early.start()
    deadline = time.monotonic() + 60
    while runner.scheduler.steps - steps < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    run("second", second)
    early.join()
    assert [out["first"], out["second"]] == expected
    assert runner.scheduler.tokens - tokens > runner.scheduler.steps - steps


def _two_long_calls(runner) -> tuple[list[threading.Thread], list[BaseException]]:
    """Two 400-token calls decoding together, returned once three steps have run; each
    call's exception lands in the list."""
    errors: list[BaseException] = []

    def run(prompt):
        try:
            runner.generate(prompt, max_new_tokens=400, sampling=Sampling(), ignore_eos=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in ("Once upon a time", "In a galaxy")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while runner.scheduler.steps < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    return threads, errors


def test_closing_the_engine_mid_batch_is_a_clean_error():
    backend = LocalBackend(LocalOptions(n_ctx=1024, n_seq=2))
    runner = backend.runner
    threads, errors = _two_long_calls(runner)
    backend.shutdown()
    for t in threads:
        t.join(timeout=60)
    assert len(errors) == 2 and all(isinstance(e, EngineError) for e in errors), errors
    assert all("closed" in str(e) for e in errors)
    with pytest.raises(EngineError, match="closed"):
        runner.generate("Hello", max_new_tokens=2, sampling=Sampling())


def test_an_interrupt_stops_the_calls_in_flight_at_their_next_token():
    """What Ctrl-C and SIGTERM do in the command line (``interrupt_all``): the verdicts in
    flight would not be written, so they stop instead of decoding to their end; new calls
    fail at once, and closing still frees the model."""
    backend = LocalBackend(LocalOptions(n_ctx=1024, n_seq=2))
    runner = backend.runner
    threads, errors = _two_long_calls(runner)
    before = runner.scheduler.steps
    runner.interrupt()
    for t in threads:
        t.join(timeout=60)
    assert runner.scheduler.steps - before <= 1  # the step already queued, if any
    assert len(errors) == 2 and all(isinstance(e, EngineError) for e in errors), errors
    assert all("interrupted" in str(e) for e in errors)
    with pytest.raises(EngineError, match="interrupted"):
        runner.generate("Hello", max_new_tokens=2, sampling=Sampling())
    backend.shutdown()
    assert runner.closed


def test_closing_while_llguidance_reads_the_vocabulary_waits_for_it():
    """llguidance reads the model's vocabulary to build its tokenizer (seconds): a close
    meanwhile used to free the model under it and kill the process."""
    backend = LocalBackend(LocalOptions(n_ctx=1024))
    runner = backend.runner
    outcome: list[object] = []

    def run():
        try:
            outcome.append(
                runner.generate("Pick: ", max_new_tokens=3, sampling=Sampling(), regex="[0-9]+")
            )
        except EngineError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not runner._vocab_lock.locked() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert runner._vocab_lock.locked(), "the tokenizer build never started"
    backend.shutdown()
    thread.join(timeout=60)
    assert len(outcome) == 1
    if isinstance(outcome[0], EngineError):
        assert "closed" in str(outcome[0])
    else:
        assert outcome[0].text.isdigit()
    with pytest.raises(EngineError, match="closed"):
        runner.generate("Hello", max_new_tokens=2, sampling=Sampling(), regex="[0-9]+")


def test_steps_wait_only_for_calls_that_are_decoding(batched_backend):
    runner = batched_backend.runner
    greedy = Sampling()

    def run(prompt):
        runner.generate(prompt, max_new_tokens=20, sampling=greedy, ignore_eos=True)

    threads = [threading.Thread(target=run, args=(p,)) for p in ("Once upon a time", "Hi there")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    partial, steps = runner.scheduler.partial_steps, runner.scheduler.steps
    run("A lone call")  # nobody else decodes: no step waits for a sequence that left
    assert runner.scheduler.steps - steps == 19
    assert runner.scheduler.partial_steps == partial
