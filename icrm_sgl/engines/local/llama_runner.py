"""In-process llama.cpp runner: prefix-reusing KV management and constrained decoding.

One ``LlamaRunner`` owns one llama.cpp context with ``n_seq`` KV sequences. Every public
call takes a free sequence (the one its program run used last, if free), brings its KV
cache to the request's prompt by keeping the longest common token prefix (from the live
sequence or from a saved state), evaluates only the new tokens, and then decodes with an
optional llguidance mask. Every llama.cpp call runs on the context's ``Scheduler`` loop,
which runs the one-token decode steps of all calls in flight as one llama.cpp batch.

Same input, same numbers: llama.cpp's CPU kernels round differently when a batch holds
one token of a sequence than when it holds several (every batch of two or more gives
bit-identical KV and logits, whatever its size; a one-token row is the same alone or in
a decode step beside other sequences). So each sequence records, per token, whether its
KV came from a one-token batch ("stepped": decoding) or from a chunk, and the KV is a
function of the tokens and those flags alone. A call's prompt keeps the flags its own
program run's previous call left for the same tokens (a program's next field reuses the
text it decoded, without evaluating it again), the rest is chunked; when another call took
the sequence in between, the runner rebuilds the same flags (stepped tokens one at a
time), so what the cache held never changes a number. Saved states hold chunked tokens
only; a prompt computed mostly afresh is also kept on disk (``state_store``), so that the
next process starts from it.
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from icrm_sgl.engines.local.grammar import GrammarCache, allowed_tokens
from icrm_sgl.engines.local.llama_adapter import GgufModel, SequenceContext
from icrm_sgl.engines.local.prefix_cache import PrefixCache
from icrm_sgl.engines.local.sampling import (
    Sampling,
    apply_penalties,
    ban_repeated_ngrams,
    choose_token,
    log_softmax,
)
from icrm_sgl.engines.local.scheduler import Scheduler
from icrm_sgl.engines.local.state_store import KVState, StateStore, common_prefix_len
from icrm_sgl.engines.local.threads import default_threads
from icrm_sgl.errors import EngineError

#: A context is saved before truncation only when at least this many tokens would be lost.
_MIN_SAVED_TOKENS = 64
#: Logits rows a sequence keeps for reuse (each is one vocabulary of float32).
_KEPT_LOGITS = 4


@dataclass
class Completion:
    """The outcome of one generation call, with sglang-style accounting."""

    text: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    finish_reason: dict = field(default_factory=dict)


@dataclass
class _Slot:
    """One KV sequence and what it holds."""

    seq: int
    tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    #: Per token: its KV came from a one-token batch (a decode step), not a chunk.
    stepped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: ``{n: row}``: next-token logits after the first ``n`` tokens, from the latest
    #: chunk evaluations; kept while those tokens' KV stays, so a call that cuts back
    #: to them (the next choice of a ``select``, the same prompt again) reuses them.
    logits: dict[int, np.ndarray] = field(default_factory=dict)

    def chunked_len(self) -> int:
        """Leading tokens whose KV all came from chunks (what a saved state may hold)."""
        stepped = np.flatnonzero(self.stepped)
        return int(stepped[0]) if len(stepped) else len(self.tokens)

    def append(self, tokens: np.ndarray, stepped: bool) -> None:
        self.tokens = np.concatenate([self.tokens, np.asarray(tokens, dtype=np.int32)])
        self.stepped = np.concatenate([self.stepped, np.full(len(tokens), stepped)])

    def cut(self, n: int) -> None:
        self.tokens, self.stepped = self.tokens[:n], self.stepped[:n]
        self.logits = {k: row for k, row in self.logits.items() if k <= n}


@dataclass(frozen=True)
class _Target:
    """The context a call needs: its prompt's tokens and, per token, the stepped flag."""

    tokens: np.ndarray
    stepped: np.ndarray
    #: Where the final chunk starts: every token from here is evaluated in one chunk.
    chunk_from: int


class LlamaRunner:
    """A GGUF model with ``n_seq`` KV sequences, shared safely between threads."""

    def __init__(
        self,
        model_path: str,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 512,
        cache_bytes: int = 512 * 2**20,
        n_seq: int = 1,
        store: StateStore | None = None,
    ) -> None:
        if not os.path.isfile(model_path):
            raise EngineError(f"model file not found: {model_path}")
        self.model = GgufModel(model_path)
        self.n_threads = n_threads or default_threads()
        self._seqs = SequenceContext(
            self.model,
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_seq_max=n_seq,
            n_threads=self.n_threads,
        )
        self.model_path = model_path
        # Free it before interpreter teardown: llama-cpp-python's __del__ then fails loudly.
        atexit.register(_close_at_exit, weakref.ref(self))
        self.n_ctx = self._seqs.n_ctx
        self.vocab_size = self.model.n_vocab
        self._n_batch = n_batch
        self.n_seq = n_seq
        self._slots = [_Slot(i) for i in range(n_seq)]
        #: The loop that runs every call into the context, batches the decode steps and
        #: keeps the pool of free sequences.
        self.scheduler: Scheduler = self._seqs.scheduler
        self.prefix_cache = PrefixCache(cache_bytes, store)
        #: Called as decoding advances: ``(tokens, calls)`` newly done (a call is a field).
        self.on_progress: Callable[[int, int], None] | None = None
        #: Each program run's context after its last call (see the module docstring).
        self._histories: WeakKeyDictionary[Any, _Slot] = WeakKeyDictionary()
        self._grammars: GrammarCache | None = None
        #: Held while llguidance reads the vocabulary (see ``_matcher``); ``close`` takes it.
        self._vocab_lock = threading.Lock()
        self.eos_ids = set(self.model.eog_ids)

    @property
    def metadata(self) -> dict[str, str]:
        return self.model.metadata

    def _matcher(self, *, regex: str | None, json_schema: str | None):
        """A fresh matcher for the constraint (None without one).

        llguidance reads the model's vocabulary while it builds its tokenizer and compiles a
        grammar, so both run under the lock ``close`` takes before it frees the model.
        """
        if regex is None and json_schema is None:
            return None
        with self._vocab_lock:
            self._check_open()
            if self._grammars is None:
                from llguidance.llamacpp import lltokenizer_from_vocab

                with warnings.catch_warnings():
                    # llguidance calls a llama.cpp function that llama-cpp-python marks
                    # deprecated, once per vocabulary entry.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    tokenizer = lltokenizer_from_vocab(self.model.vocab, eos_token=self.model.eos)
                self._grammars = GrammarCache(tokenizer, self.vocab_size)
            return self._grammars.matcher(regex=regex, json_schema=json_schema)

    def tokenize(self, text: str) -> np.ndarray:
        """Tokens of ``text``; special-token markup (chat templates) is recognised."""
        with self._slot():
            return self.model.tokenize(text)

    def detokenize(self, ids: list[int]) -> bytes:
        with self._vocab_lock:
            self._check_open()
            return self.model.detokenize(ids)

    def _check_open(self) -> None:
        if self.closed:  # llama.cpp would abort the whole process on a freed model
            raise EngineError(f"model {self.model_path} is closed")

    def close(self) -> None:
        """Free the model now rather than in ``__del__`` at interpreter exit.

        Calls in flight fail with an ``EngineError`` at their next step; the model is
        freed once they have let go of their sequences.
        """
        if self.scheduler.drain():
            with self._vocab_lock:
                self._seqs.close()
                self.model.close()

    @property
    def closed(self) -> bool:
        return self.scheduler.closing

    @contextmanager
    def _slot(self, run: Any = None) -> Iterator[_Slot]:
        """A free sequence for the duration of a call, preferring ``run``'s last."""
        last = self._histories.get(run) if run is not None else None
        seq = self.scheduler.take(None if last is None else last.seq, self._check_open)
        try:
            yield self._slots[seq]
        finally:
            self.scheduler.give(seq)

    def _decode(
        self, tokens: np.ndarray, positions: np.ndarray, seqs: np.ndarray, outputs: np.ndarray
    ) -> np.ndarray:
        self._check_open()
        # The whole call on the loop: a wrapper of ``decode`` (a meter) times llama.cpp alone.
        return self.scheduler.call(self._seqs.decode, tokens, positions, seqs, outputs)

    def _step(self, slot: _Slot, token: int) -> np.ndarray:
        """Append one decoded token; its logits come from a step shared with other calls."""
        self._check_open()
        pos = len(slot.tokens)
        if pos + 1 > self.n_ctx:
            raise EngineError(f"the context size of {self.n_ctx} tokens is full")
        row = self.scheduler.step(slot.seq, token, pos)
        slot.append(np.array([token]), stepped=True)
        return row

    # -- KV management -----------------------------------------------------------------

    def _eval(self, slot: _Slot, tokens: np.ndarray) -> np.ndarray:
        """Append ``tokens`` to the context; return the logits after the last.

        Several tokens are evaluated in chunks of at least two (see the module docstring);
        one token alone is a stepped token.
        """
        rows: list[np.ndarray] = []
        for start, stop in chunk_bounds(len(tokens), self._n_batch):
            chunk = np.asarray(tokens[start:stop], dtype=np.int32)
            n_past = len(slot.tokens)
            if n_past + len(chunk) > self.n_ctx:
                raise EngineError(f"prompt needs more than the context size of {self.n_ctx} tokens")
            outputs = np.zeros(len(chunk), dtype=bool)
            outputs[-1] = True
            rows.extend(
                self._decode(
                    chunk,
                    np.arange(n_past, n_past + len(chunk), dtype=np.int32),
                    np.full(len(chunk), slot.seq, dtype=np.int32),
                    outputs,
                )
            )
            slot.append(chunk, stepped=len(chunk) == 1)
        if len(tokens) > 1:
            slot.logits[len(slot.tokens)] = rows[-1]
            for n in list(slot.logits)[:-_KEPT_LOGITS]:
                del slot.logits[n]
        return rows[-1]

    def _truncate(self, slot: _Slot, n: int, save: bool = True) -> None:
        """Keep the first ``n`` tokens; with ``save``, keep the chunked part of what is cut
        in the prefix cache first, when it is long enough to be worth a state."""
        if n >= len(slot.tokens):
            return
        chunked = slot.chunked_len()
        if (
            save
            and self.prefix_cache.max_bytes > 0
            and chunked - n >= _MIN_SAVED_TOKENS
            and not self.prefix_cache.covers(slot.tokens[:chunked])
        ):
            self._cut(slot, chunked)
            self.prefix_cache.put(self._save_state(slot))
        self._cut(slot, n)

    def _cut(self, slot: _Slot, n: int) -> None:
        if n < len(slot.tokens):
            self._check_open()
            self._seqs.seq_rm(slot.seq, n)
            slot.cut(n)

    def _save_state(self, slot: _Slot) -> KVState:
        self._check_open()
        return KVState(slot.tokens.copy(), self._seqs.state(slot.seq))

    def _restore_state(self, slot: _Slot, state: KVState) -> bool:
        """Load ``state`` into the emptied sequence; a state llama.cpp refuses (one from
        disk that this build cannot read) is forgotten, and False returned."""
        self._check_open()
        self._seqs.seq_rm(slot.seq, 0)
        restored = self._seqs.restore(slot.seq, state.data)
        if not restored:
            self._seqs.seq_rm(slot.seq, 0)
        slot.cut(0)
        if not restored:
            self.prefix_cache.discard(state)
            return False
        slot.append(state.tokens, stepped=False)
        return True

    def _target(self, tokens: np.ndarray, history: _Slot | None) -> _Target:
        """The flags ``tokens`` must be evaluated with: those the same tokens had in this
        program run's previous context (``history``), chunked from where they part; the last
        two tokens always form the final chunk (one token alone: stepped)."""
        n = len(tokens)
        keep = 0 if history is None else common_prefix_len(history.tokens, tokens)
        keep = max(min(keep, n - 2), 0)
        stepped = np.zeros(n, dtype=bool)
        if history is not None:
            stepped[:keep] = history.stepped[:keep]
        if n - keep == 1:
            stepped[keep] = True
        return _Target(tokens, stepped, keep)

    def _matching(self, slot: _Slot, target: _Target) -> int:
        """How many leading tokens the sequence holds exactly as ``target`` needs them."""
        live = common_prefix_len(slot.tokens, target.tokens)
        differ = np.flatnonzero(slot.stepped[:live] != target.stepped[:live])
        return int(differ[0]) if len(differ) else live

    def _replay(self, slot: _Slot, target: _Target, stop: int) -> None:
        """Evaluate ``target``'s tokens from the end of ``slot`` up to ``stop``, each
        stepped token alone and each run of chunked ones in chunks."""
        i = len(slot.tokens)
        while i < stop:
            if target.stepped[i]:
                self._eval(slot, target.tokens[i : i + 1])
                i += 1
                continue
            j = i
            while j < stop and not target.stepped[j]:
                j += 1
            # A lone chunked token is evaluated with its successor, which is then dropped.
            self._eval(slot, target.tokens[i : max(j, i + 2)])
            self._cut(slot, j)
            i = j

    def _sync(
        self, slot: _Slot, tokens: np.ndarray, history: _Slot | None
    ) -> tuple[np.ndarray, int]:
        """Make the context hold exactly ``tokens``; return (next-token logits, reused)."""
        self._check_open()
        if len(tokens) == 0:
            raise EngineError("empty prompt")
        if len(tokens) >= self.n_ctx:
            raise EngineError(
                f"prompt of {len(tokens)} tokens does not fit the context size of {self.n_ctx}"
            )
        target = self._target(tokens, history)
        live = self._matching(slot, target)
        if live == len(tokens) and live in slot.logits:
            self._truncate(slot, live)
            return slot.logits[live], live
        live = self._restore_best(slot, target, live)
        reuse = max(min(live, len(tokens) - 2), 0)
        self._truncate(slot, reuse)
        self._replay(slot, target, target.chunk_from)
        logits = self._eval(slot, tokens[len(slot.tokens) :])
        self._persist_if_new(slot, reuse)
        return logits, reuse

    def _restore_best(self, slot: _Slot, target: _Target, live: int) -> int:
        """Restore the saved state that shares more of ``target`` than the live context
        (its chunked part only); return how many leading tokens the sequence now holds
        as ``target`` needs them."""
        # a file is worth loading for a long shared prefix only
        beyond = max(live, _MIN_SAVED_TOKENS - 1)
        saved, state = self.prefix_cache.best_match(target.tokens, beyond=beyond)
        first_stepped = np.flatnonzero(target.stepped)
        saved = min(saved, int(first_stepped[0])) if len(first_stepped) else saved
        if state is None or saved <= live:
            return live
        self._truncate(slot, 0)
        if not self._restore_state(slot, state):
            return 0
        self._cut(slot, saved)
        return saved

    def _persist_if_new(self, slot: _Slot, reused: int) -> None:
        """Keep a prompt that was mostly computed afresh on disk, so that the next process
        starts with it (a prompt that reused most of its tokens adds little to what is
        kept already: a file per example would only churn the disk)."""
        store = self.prefix_cache.store
        n = len(slot.tokens)
        if store is None or n < _MIN_SAVED_TOKENS or 2 * reused >= n:
            return
        if slot.chunked_len() < n or store.best_match(slot.tokens)[0] == n:
            return  # a saved state holds chunked tokens only; or this one is kept already
        self.prefix_cache.put(self._save_state(slot), persist=True)

    def _remember(self, run: Any, slot: _Slot) -> None:
        """Keep ``run``'s context (tokens and flags) for its next call."""
        self._histories[run] = _Slot(slot.seq, slot.tokens.copy(), slot.stepped.copy())

    def reset(self) -> None:
        """Empty every live sequence without saving it (saved prefixes stay)."""
        for slot in self._slots:
            self.scheduler.take(slot.seq, self._check_open, only=True)
            try:
                self._truncate(slot, 0, save=False)
            finally:
                self.scheduler.give(slot.seq)

    def cache_prefix(self, text: str) -> int:
        """Evaluate ``text`` and keep its KV state; returns its length in tokens."""
        with self._slot() as slot:
            tokens = self.model.tokenize(text)
            self._sync(slot, tokens, None)  # all chunked: the state is saved
            if not self.prefix_cache.covers(tokens):
                self.prefix_cache.put(self._save_state(slot), persist=True)
        return len(tokens)

    # -- generation ----------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        sampling: Sampling,
        stop: tuple[str, ...] = (),
        regex: str | None = None,
        json_schema: str | None = None,
        seed: int | None = None,
        ignore_eos: bool = False,
        no_repeat_ngram: int = 0,
        run: Any = None,
    ) -> Completion:
        """Continue ``prompt``; with a constraint, every token is masked by llguidance.

        ``run`` names the program run the call belongs to (its calls reuse each other's
        decoded text; any object that takes a weak reference); None: the calling thread.
        """
        matcher = self._matcher(regex=regex, json_schema=json_schema)
        rng = np.random.default_rng(seed)
        run = threading.current_thread() if run is None else run
        with self._slot(run) as slot:
            tokens = self.model.tokenize(prompt)
            logits, cached = self._sync(slot, tokens, self._histories.get(run))
            budget = min(max_new_tokens, self.n_ctx - len(tokens))
            out, text, finish = self._decode_tokens(
                slot,
                logits,
                budget,
                matcher,
                sampling,
                rng,
                stop,
                ignore_eos=ignore_eos,
                no_repeat_ngram=no_repeat_ngram,
            )
            self._remember(run, slot)
        self._report(0, 1)
        return Completion(text, len(tokens), cached, len(out), finish)

    def _report(self, tokens: int, calls: int) -> None:
        """Tell the progress hook, if any, what was just done."""
        hook = self.on_progress
        if hook is not None:
            hook(tokens, calls)

    def _decode_tokens(
        self,
        slot: _Slot,
        logits: np.ndarray,
        budget: int,
        matcher,
        sampling: Sampling,
        rng: np.random.Generator,
        stop: tuple[str, ...],
        *,
        ignore_eos: bool,
        no_repeat_ngram: int,
    ) -> tuple[list[int], str, dict]:
        """Decode up to ``budget`` tokens after ``logits``: (tokens, text, finish reason)."""
        out: list[int] = []
        counts: Counter[int] = Counter()
        text = ""
        with self.scheduler.decoding(slot.seq):
            for _ in range(max(budget, 0)):
                scores = logits.astype(np.float32, copy=True)
                if matcher is not None:
                    allowed = allowed_tokens(matcher, self.vocab_size)
                    if not allowed.any():
                        return out, text, {"type": "stop", "matched": None}
                    scores[~allowed] = -np.inf
                elif ignore_eos:
                    scores[list(self.eos_ids)] = -np.inf
                apply_penalties(scores, counts, sampling)
                if no_repeat_ngram:
                    ban_repeated_ngrams(scores, out, no_repeat_ngram)
                token = choose_token(scores, sampling, rng)
                if token in self.eos_ids:
                    return out, text, {"type": "stop", "matched": token}
                if matcher is not None and not matcher.consume_token(token):
                    raise EngineError(f"constraint rejected token {token}: {matcher.get_error()}")
                out.append(token)
                counts[token] += 1
                self._report(1, 0)
                text = self.model.detokenize(out).decode("utf-8", errors="ignore")
                hit = _find_stop(text, stop)
                if hit is not None:
                    return out, text[: hit[0]], {"type": "stop", "matched": hit[1]}
                if matcher is not None and matcher.is_stopped():
                    return out, text, {"type": "stop", "matched": None}
                if len(out) == budget:  # no step for logits nobody reads
                    break
                logits = self._step(slot, token)
        return out, text, {"type": "length", "length": budget}

    def choice_logprobs(
        self, prompt: str, choices: list[str], *, run: Any = None
    ) -> tuple[list[list], int, int]:
        """Per choice, ``(logprob, token_id, text)`` for each of its tokens after ``prompt``.

        The choices' own tokens are decoded one at a time, in the decode steps shared with
        other calls, and a token prefix that several choices share is decoded once.
        Returns the lists, the prompt length and the number of prompt tokens reused.
        ``run``: as in ``generate``.
        """
        results, cached = [], 0
        run = threading.current_thread() if run is None else run
        history = self._histories.get(run)
        with self._slot(run) as slot:
            prompt_ids = self.model.tokenize(prompt)
            # Where prompt and choice merge into one token, score from the split point.
            splits = []
            for choice in choices:
                full = self.model.tokenize(prompt + choice)
                split = min(common_prefix_len(full, prompt_ids), len(full) - 1)
                splits.append((full[:split], full[split:]))
            base_now: np.ndarray | None = None  # the prompt part the sequence holds
            #: Logits after ``base_now`` plus each decoded prefix of a tail (bytes).
            rows_after: dict[bytes, np.ndarray] = {}
            for i, (base, tail) in enumerate(splits):
                if base_now is None or not np.array_equal(base, base_now):
                    logits, reused = self._sync(slot, base, history)
                    cached = reused if i == 0 else cached
                    base_now, rows_after = base, {b"": logits}
                self._decode_tail(slot, len(base), tail[:-1], rows_after)
                rows = [rows_after[tail[:k].tobytes()] for k in range(len(tail))]
                results.append(
                    [
                        (
                            float(log_softmax(row)[tok]),
                            int(tok),
                            self.model.detokenize([int(tok)]).decode("utf-8", errors="replace"),
                        )
                        for row, tok in zip(rows, tail, strict=True)
                    ]
                )
            self._remember(run, slot)
        self._report(0, 1)
        return results, len(prompt_ids), cached

    def _decode_tail(
        self, slot: _Slot, start: int, tail: np.ndarray, rows_after: dict[bytes, np.ndarray]
    ) -> None:
        """Step ``tail`` from position ``start``, keeping what the sequence holds of it."""
        held = common_prefix_len(slot.tokens[start:], tail)
        self._cut(slot, start + held)
        with self.scheduler.decoding(slot.seq):
            for k in range(held, len(tail)):
                rows_after[tail[: k + 1].tobytes()] = self._step(slot, int(tail[k]))


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` batches of at most ``size`` covering ``n`` tokens, none of one token
    unless ``n`` is 1 (a lone token takes llama.cpp's differently rounded path)."""
    bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        (a, b), (_, c) = bounds[-2], bounds[-1]
        bounds[-2:] = [(a, b - 1), (b - 1, c)]
    return bounds


def _find_stop(text: str, stop: tuple[str, ...]) -> tuple[int, str] | None:
    hits = [(text.find(s), s) for s in stop if s and s in text]
    return min(hits) if hits else None


def _close_at_exit(ref: weakref.ref) -> None:
    runner = ref()
    if runner is not None:
        runner.close()
