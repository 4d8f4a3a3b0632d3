"""The one module that touches llama-cpp-python below its ``Llama`` class.

The local engine needs what ``Llama`` does not offer: several KV sequences in one context,
copying a prefix between sequences, saving and restoring one sequence's state, and a
batch that mixes tokens of several sequences. Those live in llama-cpp-python's private
``_internals`` and its low-level C bindings, whose names follow llama.cpp's C API and
change between releases. Everything of that kind is here, behind two small classes, so
that an upgrade breaks in one place; ``SUPPORTED_VERSIONS`` is the range tested
(``tests/engines/local/test_llama_adapter.py``).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaModel

from icrm_sgl.engines.local.scheduler import Scheduler
from icrm_sgl.errors import EngineError

#: llama-cpp-python releases this adapter is tested with (PEP 440 specifier).
SUPPORTED_VERSIONS = ">=0.3.16,<0.4"

_backend_lock = threading.Lock()
_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            # llama-cpp-python routes llama.cpp's log through this logger; keep errors only.
            logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
            llama_cpp.llama_backend_init()
            _backend_ready = True


@functools.cache
def amx_build() -> bool:
    """Whether this llama.cpp build multiplies weights with Intel AMX tiles where the CPU has
    them."""
    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


def _without_amx(params: llama_cpp.llama_model_params) -> llama_cpp.llama_model_params:
    """``params`` without the extra weight buffers on an AMX build. Built from source by GCC
    12 (Debian 12's), ggml's AMX matrix multiply loads a tile configuration with half its
    bytes unset, and the first decode dies of a general protection fault (seen on a Xeon
    with AMX). The other extra buffer, weight repacking, covers no type the default model
    uses on x86 (Q8_0, Q4_1)."""
    if amx_build():
        params.use_extra_bufts = False
    return params


def model_params() -> llama_cpp.llama_model_params:
    """llama.cpp's default model parameters, safe on every build (``_without_amx``)."""
    return _without_amx(llama_cpp.llama_model_default_params())


def llama_without_amx() -> None:
    """Make every ``llama_cpp.Llama`` built in this process load its weights with
    ``model_params()``: for llama-cpp-python's own server, which takes no such option."""
    low_level = llama_cpp.llama_cpp
    defaults = low_level.llama_model_default_params
    if not getattr(defaults, "without_amx", False):
        safe = functools.wraps(defaults)(lambda: _without_amx(defaults()))
        safe.without_amx = True  # type: ignore[attr-defined]
        low_level.llama_model_default_params = safe


#: llama.cpp's file types by the names ``quantize`` takes.
_FTYPES = {"Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}


def quantize(source: str, target: str, quant: str) -> None:
    """Write ``source``'s weights to ``target`` in ``quant`` (already-quantized weights
    are requantized; the result is the same on any number of threads)."""
    _init_backend()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _FTYPES[quant]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(
        source.encode("utf-8"), target.encode("utf-8"), ctypes.byref(params)
    )
    if status != 0:
        raise EngineError(f"llama.cpp could not write {quant} weights of {source} to {target}")


class GgufModel:
    """A GGUF model's weights (or vocabulary only) with its tokenizer and metadata."""

    def __init__(self, path: str, *, vocab_only: bool = False) -> None:
        _init_backend()
        params = model_params()
        params.vocab_only = vocab_only
        try:
            self._model = LlamaModel(path_model=path, params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"cannot load GGUF model {path}: {exc}") from exc
        self.pointer = self._model.model
        #: The vocabulary handle llguidance's llama.cpp tokenizer bridge takes.
        self.vocab = self._model.vocab
        self.n_vocab = self._model.n_vocab()
        self.eos = self._model.token_eos()
        self.eog_ids = frozenset(
            t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t)
        ) | {self.eos}
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.metadata: dict[str, str] = self._model.metadata()

    def tokenize(self, text: str) -> np.ndarray:
        """Token ids of ``text``; special-token markup (chat templates) is recognised."""
        ids = self._model.tokenize(text.encode("utf-8"), add_bos=self.add_bos, special=True)
        return np.asarray(ids, dtype=np.int32)

    def detokenize(self, ids: list[int]) -> bytes:
        return self._model.detokenize(ids)

    def close(self) -> None:
        self._model.close()


#: Bumped when ``SequenceContext`` lays out its KV cache differently (cache types, flash
#: attention, unified or not): a saved sequence state is valid for one layout only.
STATE_LAYOUT = "f16-kv/no-flash-attn/per-sequence/1"


def build_identity() -> dict[str, str]:
    """What a model's numbers depend on besides its weights: llama-cpp-python's version and
    the CPU features its llama.cpp was built for (other kernels round differently)."""
    return {
        "llama_cpp": llama_cpp.__version__,
        "system": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
    }


def state_identity(model_path: str) -> dict[str, Any]:
    """What a saved sequence state is valid for: the model file (path, size, modification
    time), the llama.cpp build (``build_identity``), the KV layout."""
    stat = os.stat(model_path)
    return {
        "model": {
            "path": os.path.realpath(model_path),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        },
        **build_identity(),
        "layout": STATE_LAYOUT,
    }


class SequenceContext:
    """A llama.cpp context holding ``n_seq_max`` KV sequences of up to ``n_ctx`` tokens
    each, decoded together in batches of up to ``n_batch`` tokens.

    Each sequence has its own KV buffer (llama.cpp's non-unified cache): a sequence's
    numbers then do not depend on which other sequences share a batch (in one shared
    pool, where a token's cell lands changes the attention sums in the last bits).

    Every call into the context runs on the thread of its ``Scheduler``, the loop that
    also batches decode steps. llama.cpp's CPU backend computes with OpenMP, which keeps
    a team of worker threads per calling thread; once two threads have called it,
    libgomp counts more threads than cores and every barrier in the graph sleeps instead
    of spinning: with 2 threads a decode step took 2.5x as long when called from a
    second thread (23 ms against 9.4 ms here).
    """

    def __init__(
        self, model: GgufModel, *, n_ctx: int, n_batch: int, n_seq_max: int, n_threads: int
    ) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * n_seq_max
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = n_seq_max
        params.n_threads = params.n_threads_batch = n_threads
        params.kv_unified = False
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._ctx = llama_cpp.llama_init_from_model(model.pointer, params)
        if self._ctx is None:
            raise EngineError(f"llama.cpp could not create a context of {n_ctx} tokens")
        self.n_ctx = llama_cpp.llama_n_ctx_seq(self._ctx)
        self.n_batch = n_batch
        self.n_seq_max = n_seq_max
        self.n_vocab = model.n_vocab
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, n_seq_max)
        self.scheduler = Scheduler(self._decode_step, n_slots=n_seq_max)

    def _decode_step(self, tokens: np.ndarray, positions: np.ndarray, seqs: np.ndarray):
        """One decode step: every token's logits (through ``decode``, on the loop)."""
        return self.decode(tokens, positions, seqs, np.ones(len(tokens), dtype=bool))

    def decode(
        self, tokens: np.ndarray, positions: np.ndarray, seqs: np.ndarray, outputs: np.ndarray
    ) -> np.ndarray:
        """Evaluate one batch (token i at ``positions[i]`` in sequence ``seqs[i]``); returns
        the logits of the tokens whose ``outputs`` flag is set, one row each, in order."""
        return self.scheduler.call(self._decode, tokens, positions, seqs, outputs)

    def _decode(
        self, tokens: np.ndarray, positions: np.ndarray, seqs: np.ndarray, outputs: np.ndarray
    ) -> np.ndarray:
        n = len(tokens)
        if not 0 < n <= self.n_batch:
            raise EngineError(f"a batch holds 1 to {self.n_batch} tokens, not {n}")
        batch = self._batch
        batch.n_tokens = n
        ctypes.memmove(batch.token, np.ascontiguousarray(tokens, np.int32).ctypes.data, 4 * n)
        ctypes.memmove(batch.pos, np.ascontiguousarray(positions, np.int32).ctypes.data, 4 * n)
        flags = np.ascontiguousarray(outputs, np.int8)
        ctypes.memmove(batch.logits, flags.ctypes.data, n)
        for i, seq in enumerate(seqs.tolist()):
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
        status = llama_cpp.llama_decode(self._ctx, batch)
        if status == 1:
            raise EngineError("the KV cache is full: no room for this batch")
        if status != 0:
            raise EngineError(f"llama.cpp decode failed (status {status})")
        rows = np.flatnonzero(flags)
        out = np.empty((len(rows), self.n_vocab), dtype=np.float32)
        for j, i in enumerate(rows.tolist()):
            ptr = llama_cpp.llama_get_logits_ith(self._ctx, i)
            out[j] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        return out

    def seq_rm(self, seq: int, start: int, stop: int = -1) -> None:
        """Drop positions ``[start, stop)`` (to the end when ``stop`` is -1) of a sequence."""
        self.scheduler.call(llama_cpp.llama_memory_seq_rm, self._memory, seq, start, stop)

    def copy_sequence(self, src: int, dst: int) -> None:
        """Copy all of ``src``'s KV into the empty sequence ``dst`` (no recomputation).

        Only whole sequences: llama.cpp aborts the process on a partial copy between
        separate KV buffers.
        """
        self.scheduler.call(llama_cpp.llama_memory_seq_cp, self._memory, src, dst, -1, -1)

    def state(self, seq: int) -> bytes:
        """One sequence's KV state, serialised."""
        return self.scheduler.call(self._state, seq)

    def _state(self, seq: int) -> bytes:
        size = llama_cpp.llama_state_seq_get_size(self._ctx, seq)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self._ctx, buf, size, seq)
        return ctypes.string_at(buf, written)

    def restore(self, seq: int, data: bytes) -> bool:
        """Load a state from ``state`` into an empty sequence; False when llama.cpp refuses."""
        return self.scheduler.call(self._restore, seq, data)

    def _restore(self, seq: int, data: bytes) -> bool:
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        return llama_cpp.llama_state_seq_set_data(self._ctx, buf, len(data), seq) != 0

    def close(self) -> None:
        if self._ctx is not None:
            self.scheduler.call(self._free)
            self.scheduler.stop()

    def _free(self) -> None:
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)
        self._ctx = None
