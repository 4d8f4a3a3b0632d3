"""The llama-cpp-python adapter: the only user of its private API, pinned to a tested range."""

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from packaging.specifiers import SpecifierSet

from icrm_sgl.engines.local.gguf import default_model_path
from icrm_sgl.engines.local.llama_adapter import SUPPORTED_VERSIONS, GgufModel, SequenceContext

PACKAGE = Path(__file__).resolve().parents[3] / "icrm_sgl"
PRIVATE = re.compile(r"_internals|\._ctx|\._model\b|\._llm\b")  # issue 19's grep


def test_installed_llama_cpp_python_is_in_the_supported_range():
    installed = version("llama-cpp-python")
    assert installed in SpecifierSet(SUPPORTED_VERSIONS), (
        f"llama-cpp-python {installed} is outside {SUPPORTED_VERSIONS}: "
        "rerun tests/engines/local/test_llama_adapter.py and widen the range in llama_adapter.py"
    )


def test_private_llama_cpp_api_is_used_only_in_the_adapter():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "llama_adapter.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert offenders == []


@pytest.fixture(scope="module")
def model():
    gguf = GgufModel(str(default_model_path()))
    yield gguf
    gguf.close()


def _decode(ctx, tokens, seq, start=0):
    n = len(tokens)
    outputs = np.zeros(n, dtype=bool)
    outputs[-1] = True
    return ctx.decode(
        tokens, np.arange(start, start + n, dtype=np.int32), np.full(n, seq, np.int32), outputs
    )[0]


def test_tokenizer_round_trip_and_metadata(model):
    ids = model.tokenize("Hello, world!")
    assert model.detokenize(ids.tolist()) == b"Hello, world!"
    assert model.eos in model.eog_ids and model.n_vocab > 1000
    assert "general.architecture" in model.metadata
    vocab_only = GgufModel(str(default_model_path()), vocab_only=True)
    assert vocab_only.tokenize("Hello, world!").tolist() == ids.tolist()
    vocab_only.close()


def test_sequence_copy_state_round_trip_and_batched_sequences(model):
    ctx = SequenceContext(model, n_ctx=512, n_batch=64, n_seq_max=3, n_threads=1)
    try:
        prefix = model.tokenize("The capital of France is Paris. The capital of Italy is")
        suffix = model.tokenize(" Rome. The capital of Spain is")
        alone = _decode(ctx, np.concatenate([prefix, suffix]), 0)
        ctx.seq_rm(0, 0)
        _decode(ctx, prefix, 0)
        ctx.copy_sequence(0, 1)
        shared = _decode(ctx, suffix, 1, start=len(prefix))
        assert np.array_equal(shared, alone)  # the copied prefix was not recomputed
        saved = ctx.state(1)
        ctx.seq_rm(1, 0)
        assert ctx.restore(2, saved)
        # Two sequences in one batch: each row is its own sequence's next-token logits.
        both = ctx.decode(
            np.array([suffix[0], suffix[0]], np.int32),
            np.array([len(prefix), len(prefix) + len(suffix)], np.int32),
            np.array([0, 2], np.int32),
            np.array([True, True]),
        )
        assert both.shape == (2, model.n_vocab) and not np.array_equal(both[0], both[1])
    finally:
        ctx.close()


def test_a_full_context_is_a_clear_error(model):
    from icrm_sgl.errors import EngineError

    ctx = SequenceContext(model, n_ctx=256, n_batch=256, n_seq_max=1, n_threads=1)
    try:
        tokens = np.resize(model.tokenize("word " * 20), 200).astype(np.int32)
        _decode(ctx, tokens, 0)
        with pytest.raises(EngineError, match="KV cache is full"):
            _decode(ctx, tokens, 0, start=200)
    finally:
        ctx.close()


def test_every_decode_runs_on_the_contexts_own_thread(model, monkeypatch):
    """OpenMP keeps a worker team per calling thread: decoding from several threads made
    each 2-thread step 2.5x slower, so the context always decodes on one thread."""
    import threading

    import llama_cpp

    ran_on: list[int] = []
    real = llama_cpp.llama_decode

    def recording(ctx, batch):
        ran_on.append(threading.get_ident())
        return real(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", recording)
    ctx = SequenceContext(model, n_ctx=256, n_batch=64, n_seq_max=2, n_threads=1)
    try:
        tokens = model.tokenize("The capital of France is")
        _decode(ctx, tokens, 0)
        caller = threading.Thread(target=_decode, args=(ctx, tokens, 1))
        caller.start()
        caller.join()
    finally:
        ctx.close()
    assert len(ran_on) == 2 and len(set(ran_on)) == 1
    assert ran_on[0] not in (threading.get_ident(), caller.ident)


def test_llama_cpp_pythons_own_llama_decodes_once_told_to_load_as_the_engine_does():
    """On a Xeon with AMX, a GCC 12 build's AMX weight buffers kill the first decode (a
    general protection fault); the engine and the test server load without them there."""
    script = (
        "import sys, llama_cpp\n"
        "from icrm_sgl.engines.local.llama_adapter import amx_build, llama_without_amx\n"
        "llama_without_amx()\n"
        "llm = llama_cpp.Llama(sys.argv[1], n_ctx=256, n_threads=1, verbose=False)\n"
        "llm.eval(llm.tokenize(b'Hello, world'))\n"
        "print(llm.model_params.use_extra_bufts, amx_build())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(default_model_path())], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    extra_bufts, amx = done.stdout.split()
    assert extra_bufts == str(amx != "True")
