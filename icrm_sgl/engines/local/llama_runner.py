"""In-process llama.cpp runner: the calls a program makes, with constrained decoding.

One ``LlamaRunner`` owns one llama.cpp context with ``n_seq`` KV sequences. Every public
call takes a free sequence (the one its program run used last, if free), brings it to the
request's prompt (``SequenceKV``: prefix reuse, same numbers whatever the cache held), and
then decodes with an optional llguidance mask. Every llama.cpp call runs on the context's
``Scheduler`` loop, which runs the one-token decode steps of all calls in flight as one
llama.cpp batch.
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
from icrm_sgl.engines.local.sequence_kv import SequenceKV, Slot
from icrm_sgl.engines.local.state_store import StateStore, common_prefix_len
from icrm_sgl.engines.local.threads import default_threads
from icrm_sgl.errors import EngineError


@dataclass
class Completion:
    """The outcome of one generation call, with sglang-style accounting."""

    text: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    finish_reason: dict = field(default_factory=dict)


#: Every runner made in this process, for ``interrupt_all``.
_RUNNERS: weakref.WeakSet[LlamaRunner] = weakref.WeakSet()


def interrupt_all() -> None:
    """The process is stopping (Ctrl-C, SIGTERM): on every runner, calls in flight fail at
    their next token and new calls at once, instead of decoding verdicts nobody will read.
    Takes no lock: safe in a signal handler."""
    for runner in list(_RUNNERS):
        runner.interrupt()


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
        #: Set by ``interrupt``: every call fails at its next token.
        self.interrupted = False
        _RUNNERS.add(self)
        self.n_ctx = self._seqs.n_ctx
        self.vocab_size = self.model.n_vocab
        self.n_seq = n_seq
        #: The loop that runs every call into the context, batches the decode steps and
        #: keeps the pool of free sequences.
        self.scheduler: Scheduler = self._seqs.scheduler
        self.prefix_cache = PrefixCache(cache_bytes, store)
        #: What each sequence holds, and how a prompt is brought into it.
        self.kv = SequenceKV(self._seqs, self.prefix_cache, check_open=self._check_open)
        #: Called as decoding advances: ``(tokens, calls)`` newly done (a call is a field).
        self.on_progress: Callable[[int, int], None] | None = None
        #: Each program run's context after its last call (see ``sequence_kv``).
        self._histories: WeakKeyDictionary[Any, Slot] = WeakKeyDictionary()
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

    def _check_open(self) -> None:
        if self.closed:  # llama.cpp would abort the whole process on a freed model
            raise EngineError(f"model {self.model_path} is closed")
        if self.interrupted:
            raise EngineError("interrupted: the process is stopping")

    def interrupt(self) -> None:
        """Fail every call at its next token from now on (``close`` still frees the model
        once they have let go of their sequences). Takes no lock."""
        self.interrupted = True

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
    def _slot(self, run: Any = None) -> Iterator[Slot]:
        """A free sequence for the duration of a call, preferring ``run``'s last."""
        last = self._histories.get(run) if run is not None else None
        seq = self.scheduler.take(None if last is None else last.seq, self._check_open)
        try:
            yield self.kv.slots[seq]
        finally:
            self.scheduler.give(seq)

    def _remember(self, run: Any, slot: Slot) -> None:
        """Keep ``run``'s context (tokens and flags) for its next call."""
        self._histories[run] = Slot(slot.seq, slot.tokens.copy(), slot.stepped.copy())

    def reset(self) -> None:
        """Empty every live sequence without saving it (saved prefixes stay)."""
        for slot in self.kv.slots:
            self.scheduler.take(slot.seq, self._check_open, only=True)
            try:
                self.kv.truncate(slot, 0, save=False)
            finally:
                self.scheduler.give(slot.seq)

    def cache_prefix(self, text: str) -> int:
        """Evaluate ``text`` and keep its KV state; returns its length in tokens."""
        with self._slot() as slot:
            tokens = self.model.tokenize(text)
            self.kv.sync(slot, tokens, None)  # all chunked: the state is saved
            if not self.prefix_cache.covers(tokens):
                self.prefix_cache.put(self.kv.save_state(slot), persist=True)
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
            logits, cached = self.kv.sync(slot, tokens, self._histories.get(run))
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
        slot: Slot,
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
                logits = self.kv.step(slot, token)
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
                    logits, reused = self.kv.sync(slot, base, history)
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
        self, slot: Slot, start: int, tail: np.ndarray, rows_after: dict[bytes, np.ndarray]
    ) -> None:
        """Step ``tail`` from position ``start``, keeping what the sequence holds of it."""
        held = common_prefix_len(slot.tokens[start:], tail)
        self.kv.cut(slot, start + held)
        with self.scheduler.decoding(slot.seq):
            for k in range(held, len(tail)):
                rows_after[tail[: k + 1].tobytes()] = self.kv.step(slot, int(tail[k]))


def _find_stop(text: str, stop: tuple[str, ...]) -> tuple[int, str] | None:
    hits = [(text.find(s), s) for s in stop if s and s in text]
    return min(hits) if hits else None


def _close_at_exit(ref: weakref.ref) -> None:
    runner = ref()
    if runner is not None:
        runner.close()
