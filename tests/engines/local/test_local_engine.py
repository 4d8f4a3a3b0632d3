"""The local engine with the real SmolLM2 model: constraints, select, prefix reuse."""

import json
import re
import subprocess
import sys
import threading

import jsonschema
import numpy as np
import pytest

# Not ``import sglang as sgl``: pytest probes every module-level name while collecting, and
# a probe of the package runs its deferred ``__init__`` (torch: ~8 s of CPU per worker).
from sglang.lang import api as sgl

from icrm_sgl.engines import create_engine
from icrm_sgl.engines.local.prefix_cache import PrefixCache
from icrm_sgl.engines.local.sampling import Sampling, ban_repeated_ngrams
from icrm_sgl.engines.local.state_store import KVState
from icrm_sgl.errors import EngineError, InputError
from icrm_sgl.programs.judge import FIELD_REGEX

PROMPT = "Q: Name a colour of the sky.\nA:"


def test_regex_constrained_generation_matches(local_backend):
    regex = r"(red|green|blue) [0-9]{2}"
    out = local_backend.runner.generate(PROMPT, max_new_tokens=20, sampling=Sampling(), regex=regex)
    assert re.fullmatch(regex, out.text), out.text
    assert out.finish_reason["type"] == "stop"


def test_field_regex_yields_a_json_string_body(local_backend):
    prompt = 'Reply in JSON.\n{"answer": "'
    out = local_backend.runner.generate(
        prompt, max_new_tokens=60, sampling=Sampling(), regex=FIELD_REGEX
    )
    assert re.fullmatch(FIELD_REGEX, out.text) or out.finish_reason["type"] == "length"
    if out.text.endswith('"'):
        assert isinstance(json.loads('"' + out.text), str)


def test_json_schema_constrained_generation_validates(local_backend):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    out = local_backend.runner.generate(
        "A person as JSON:\n",
        max_new_tokens=60,
        sampling=Sampling(),
        json_schema=json.dumps(schema),
    )
    jsonschema.validate(json.loads(out.text), schema)


def test_unconstrained_greedy_is_deterministic_and_stops(local_backend):
    runner = local_backend.runner
    a = runner.generate(PROMPT, max_new_tokens=12, sampling=Sampling(), stop=("\n",))
    b = runner.generate(PROMPT, max_new_tokens=12, sampling=Sampling(), stop=("\n",))
    assert a.text == b.text and "\n" not in a.text
    assert a.completion_tokens <= 12


def test_seeded_sampling_is_reproducible(local_backend):
    runner = local_backend.runner
    hot = Sampling(temperature=1.5, top_p=0.95, top_k=50)
    runs = [
        runner.generate(PROMPT, max_new_tokens=10, sampling=hot, seed=seed).text
        for seed in (1, 1, 2, 3)
    ]
    assert runs[0] == runs[1]
    assert len(set(runs)) > 1


def test_select_returns_logprob_per_choice(local_backend):
    @sgl.function
    def capital(s):
        s += "The capital of France is"
        s += sgl.select("city", choices=[" Paris", " Berlin", " Madrid"])

    state = capital.run(backend=local_backend)
    assert state.error() is None
    assert state["city"] == " Paris"
    meta = state.get_meta_info("city")
    assert len(meta["input_token_logprobs"]) == 3
    assert all(lp[0][0] < 0 for lp in meta["input_token_logprobs"])


def test_prefix_reuse_across_calls(local_backend):
    runner = local_backend.runner
    shared = "Instructions that every request repeats. " * 40
    runner.generate(shared + "First question?", max_new_tokens=2, sampling=Sampling())
    second = runner.generate(shared + "Another question?", max_new_tokens=2, sampling=Sampling())
    assert second.cached_tokens / second.prompt_tokens >= 0.9


def test_saved_state_is_restored_after_a_different_context(local_backend):
    runner = local_backend.runner
    long_a = "Alpha context sentence number one. " * 30
    first = runner.generate(long_a + "Go.", max_new_tokens=4, sampling=Sampling())
    runner.generate("Something unrelated entirely. " * 5, max_new_tokens=2, sampling=Sampling())
    again = runner.generate(long_a + "Go.", max_new_tokens=4, sampling=Sampling())
    assert again.text == first.text
    assert again.cached_tokens >= again.prompt_tokens - 2


def test_run_batch_from_many_threads_matches_sequential(local_backend):
    @sgl.function
    def answer(s, question):
        s += "Answer briefly.\nQ: " + question + "\nA:"
        s += sgl.gen("a", max_tokens=8, stop="\n")

    questions = [
        {"question": q}
        for q in [
            "What is 2+2?",
            "Colour of grass?",
            "Capital of Italy?",
            "Opposite of hot?",
            "Largest ocean?",
            "A fruit?",
        ]
    ]
    sequential = [answer.run(backend=local_backend, temperature=0, **q)["a"] for q in questions]
    states = answer.run_batch(questions, backend=local_backend, num_threads=4, temperature=0)
    assert all(s.error() is None for s in states)
    assert [s["a"] for s in states] == sequential
    assert threading.active_count() < 50


def test_prefix_cache_is_bounded_and_prefers_longest_match():
    cache = PrefixCache(max_bytes=100)
    cache.put(KVState(np.array([1, 2, 3], dtype=np.int32), b"x" * 40))
    cache.put(KVState(np.array([1, 2, 3, 4, 5], dtype=np.int32), b"y" * 40))
    assert len(cache) == 1  # the strict prefix entry became redundant
    cache.put(KVState(np.array([9, 9], dtype=np.int32), b"z" * 40))
    cache.put(KVState(np.array([7, 7], dtype=np.int32), b"w" * 40))
    assert cache.nbytes <= 100
    n, state = cache.best_match(np.array([9, 9, 1], dtype=np.int32))
    assert n == 2 and state.tokens.tolist() == [9, 9]


def test_ngram_ban_blocks_loops_but_never_everything():
    logits = np.zeros(10, dtype=np.float32)
    ban_repeated_ngrams(logits, [1, 2, 3, 1, 2], 3)
    assert logits[3] == -np.inf and np.isfinite(np.delete(logits, 3)).all()
    only = np.full(10, -np.inf, dtype=np.float32)
    only[3] = 0.0
    ban_repeated_ngrams(only, [1, 2, 3, 1, 2], 3)
    assert only[3] == 0.0


def test_bad_model_and_engine_names_are_clear_errors(tmp_path):
    with pytest.raises(EngineError, match=r"missing\.gguf': no such file"):
        create_engine("local", model_name=str(tmp_path / "missing.gguf"))
    with pytest.raises(InputError, match="unknown engine 'nope'"):
        create_engine("nope")


def test_a_model_left_open_exits_without_a_traceback():
    """llama-cpp-python's __del__ fails at interpreter teardown; the runner closes first."""
    code = "from icrm_sgl import ICRM; model = ICRM(rm_type='individual', num_shots=1)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
