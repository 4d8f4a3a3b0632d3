"""Same input, same verdict: the local engine's numbers do not depend on the cache state.

llama.cpp rounds a one-token batch differently from a batch of several tokens; the
runner records which tokens were decoded one at a time, reuses a call's own decoded text
with those flags, and rebuilds the same flags when another call took its sequence
(issue 22, item 2).
"""

import json
import threading

import pytest

from icrm_sgl.engines.local.sampling import Sampling
from icrm_sgl.engines.local.sequence_kv import chunk_bounds

PROMPT = "Rate the reply from 1 to 10.\nUser: I want to book a flight\nReply: Where to?\nScore:"
CHOICES = [" 2", " 7", " 10"]


def _public(result) -> str:
    """A judgement's verdict and probabilities as bytes-comparable text."""
    meta = {k: result.meta.get(k) for k in ("probabilities", "expected_score", "truncated")}
    return json.dumps({"verdict": result.verdict, "error": result.error, **meta}, sort_keys=True)


@pytest.fixture
def fresh_individual_model():
    """A model of its own: what its cache holds depends on this test alone (no prefix
    states kept on disk by earlier tests of the session)."""
    from icrm_sgl import ICRM

    with ICRM(rm_type="individual", num_shots=1, n_ctx=4096, disk_cache_mib=0) as model:
        yield model


def test_same_example_twice_in_a_batch_and_once_after_gets_identical_verdicts(
    fresh_individual_model, individual_example
):
    """The reproduction of issue 22: ids i1 and i2 got scores 8 and 2 (20 tokens, 1 shot)."""
    individual_model = fresh_individual_model
    batch = [{**individual_example, "id": i} for i in ("i1", "i2")]
    first = list(individual_model.judge_batch(batch, max_tokens=20))
    (again,) = individual_model.judge_batch([{**individual_example, "id": "i3"}], max_tokens=20)
    texts = [_public(r) for r in [*first, again]]
    assert all(r.ok for r in [*first, again]), texts
    assert texts[0] == texts[1] == texts[2]
    # The cache held different amounts of each prompt, which is what used to matter.
    assert first[0].meta["cached_tokens"] != first[1].meta["cached_tokens"]


def test_identical_examples_interleaved_on_threads_get_identical_verdicts(
    individual_model, individual_example
):
    other = {
        "conversation": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
        ]
    }
    batch = [
        {**individual_example, "id": "a"},
        {**other, "id": "b"},
        {**individual_example, "id": "c"},
    ]
    results = {r.id: r for r in individual_model.judge_batch(batch, max_tokens=20, num_threads=3)}
    assert _public(results["a"]) == _public(results["c"])


@pytest.mark.slow  # test_local_threads.py checks the logits of each thread count by default
def test_the_thread_count_changes_neither_verdicts_nor_probabilities(individual_example):
    """``n_threads`` is a speed setting (left out of the cache identity): llama.cpp gives
    every output value to one thread, so 1 and 2 threads compute the same bits."""
    from icrm_sgl import ICRM

    texts = []
    for threads in (1, 2):
        with ICRM(rm_type="individual", num_shots=1, n_ctx=2048, n_threads=threads) as model:
            (result,) = model.judge_batch([individual_example], max_tokens=20)
        assert result.ok, result.error
        texts.append(_public(result))
    assert texts[0] == texts[1]


def _as_another_program(call, *args, **kwargs) -> None:
    """Run a runner call on a thread of its own, as each sglang program's calls run: a
    thread's next call reuses the flags of the text its own previous call decoded."""
    worker = threading.Thread(target=call, args=args, kwargs=kwargs)
    worker.start()
    worker.join()


@pytest.mark.parametrize("state", ["empty", "longer_prompt", "after_decoding", "one_token_short"])
def test_choice_logprobs_are_bitwise_the_same_whatever_the_cache_held(local_backend, state):
    """Another program left the sequence holding a longer prompt, decoded tokens, or a
    prompt one token short followed by decoded tokens (with this model, the first decoded
    token is the prompt's next one, ``\n``, held with the other flag)."""
    runner = local_backend.runner
    runner.reset()
    reference = runner.choice_logprobs(PROMPT, CHOICES)[0]
    if state == "longer_prompt":
        _as_another_program(runner.choice_logprobs, PROMPT + " 7 out of 10 because", CHOICES)
    elif state == "after_decoding":
        _as_another_program(runner.generate, PROMPT, max_new_tokens=6, sampling=Sampling())
    elif state == "one_token_short":
        short = PROMPT[: PROMPT.rindex("\n")]
        _as_another_program(runner.generate, short, max_new_tokens=3, sampling=Sampling())
    else:
        runner.reset()
    assert runner.choice_logprobs(PROMPT, CHOICES)[0] == reference


def test_greedy_generation_is_the_same_after_its_own_prompt_was_cached(local_backend):
    runner = local_backend.runner
    runner.reset()
    fresh = runner.generate(PROMPT, max_new_tokens=16, sampling=Sampling())
    again = runner.generate(PROMPT, max_new_tokens=16, sampling=Sampling())
    # The prompt's logits are kept with its KV: nothing of the prompt is evaluated again.
    assert again.cached_tokens == again.prompt_tokens
    assert again.text == fresh.text


def test_a_select_evaluates_its_prompt_once_for_all_choices(local_backend, monkeypatch):
    runner = local_backend.runner
    runner.reset()
    reference, prompt_len, _ = runner.choice_logprobs(PROMPT, CHOICES)
    starts: list[int] = []
    decode = runner._seqs.decode

    def recording(tokens, positions, seqs, outputs):
        starts.append(int(positions[0]))
        return decode(tokens, positions, seqs, outputs)

    monkeypatch.setattr(runner._seqs, "decode", recording)
    again = runner.choice_logprobs(PROMPT, CHOICES)[0]
    assert again == reference
    assert all(start >= prompt_len for start in starts), starts


def test_a_select_decodes_each_shared_choice_prefix_once_whatever_the_order(
    local_backend, monkeypatch
):
    runner = local_backend.runner
    choices = ['A++"}', 'A+"}', 'A=B"}', 'B+"}', 'B++"}']
    prompt = PROMPT.replace("Score:", 'Verdict: {"choice": "')
    runner.reset()
    reference = runner.choice_logprobs(prompt, choices)[0]
    stepped: list[int] = []
    step = runner.kv.step

    def counting(slot, token):
        stepped.append(token)
        return step(slot, token)

    monkeypatch.setattr(runner.kv, "step", counting)
    backwards = runner.choice_logprobs(prompt, choices[::-1])[0]
    assert backwards[::-1] == reference
    base = len(runner.model.tokenize(prompt))
    tails = [runner.model.tokenize(prompt + choice)[base:-1] for choice in choices]
    prefixes = {tuple(tail[:k]) for tail in tails for k in range(1, len(tail) + 1)}
    # Every token a choice is scored after is decoded once: A and B are not repeated.
    assert len(stepped) == len(prefixes) < sum(len(tail) for tail in tails)


def test_a_field_after_decoding_gets_the_same_numbers_when_another_call_took_its_sequence(
    local_backend,
):
    """A program's next field reuses the KV its decoding wrote; when another call used the
    sequence in between, the decoded tokens are replayed one at a time, not chunked."""
    import threading

    runner = local_backend.runner
    first = PROMPT.replace("Score:", "Reason:")

    def program(interrupt: bool) -> list:
        out: list = []

        def run() -> None:
            decoded = runner.generate(first, max_new_tokens=12, sampling=Sampling()).text
            if interrupt:
                other = threading.Thread(
                    target=runner.generate,
                    args=("Q: Name three animals.\nA:",),
                    kwargs={"max_new_tokens": 4, "sampling": Sampling()},
                )
                other.start()
                other.join()
            field = runner.choice_logprobs(first + decoded + "\nScore:", CHOICES)
            out.append((decoded, field[0], field[2]))

        thread = threading.Thread(target=run)  # a fresh thread: a program's own history
        thread.start()
        thread.join()
        return out[0]

    runner.reset()
    kept = program(interrupt=False)
    runner.reset()
    taken = program(interrupt=True)
    assert taken[:2] == kept[:2]
    assert taken[2] < kept[2]  # the second call found less of its context live


@pytest.mark.parametrize(
    ("n", "size", "expected"),
    [
        (1, 4, [(0, 1)]),
        (5, 4, [(0, 3), (3, 5)]),
        (8, 4, [(0, 4), (4, 8)]),
        (9, 4, [(0, 4), (4, 7), (7, 9)]),
        (0, 4, []),
    ],
)
def test_chunks_never_leave_one_token_alone(n, size, expected):
    assert chunk_bounds(n, size) == expected
