"""In-process llama.cpp runner: prefix-reusing KV management and constrained decoding.

One ``LlamaRunner`` owns one llama.cpp context (sequence 0). Every public call takes a
lock, brings the KV cache to the request's prompt by keeping the longest common token
prefix (from the live context or from a saved state), evaluates only the new tokens,
and then decodes with an optional llguidance mask.

Same input, same numbers: llama.cpp's CPU kernels round differently when a batch holds
one token than when it holds several (every batch of two or more gives bit-identical KV
and logits, whatever its size). So prompt tokens are only ever evaluated in batches of
at least two, and the KV that decoding writes one token at a time is never reused for a
later prompt: the KV cache, the saved states and the prompt logits are then a function
of the prompt's tokens alone, not of what the cache held before.
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
import weakref
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from icrm_sgl.engines.grammar import GrammarCache, allowed_tokens
from icrm_sgl.engines.llama_adapter import GgufModel, SequenceContext
from icrm_sgl.engines.prefix_cache import KVState, PrefixCache, common_prefix_len
from icrm_sgl.engines.sampling import (
    Sampling,
    apply_penalties,
    ban_repeated_ngrams,
    choose_token,
    log_softmax,
)
from icrm_sgl.errors import EngineError

#: A context is saved before truncation only when at least this many tokens would be lost.
_MIN_SAVED_TOKENS = 64


def default_threads() -> int:
    """All cores but one: llama.cpp's spinning worker threads slow down by orders of
    magnitude when another busy process competes for every core."""
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass
class Completion:
    """The outcome of one generation call, with sglang-style accounting."""

    text: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    finish_reason: dict = field(default_factory=dict)


class LlamaRunner:
    """A GGUF model with one KV sequence, shared safely between threads."""

    def __init__(
        self,
        model_path: str,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 512,
        cache_bytes: int = 512 * 2**20,
    ) -> None:
        if not os.path.isfile(model_path):
            raise EngineError(f"model file not found: {model_path}")
        self.model = GgufModel(model_path)
        self._seqs = SequenceContext(
            self.model,
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_seq_max=1,
            n_threads=n_threads or default_threads(),
        )
        self.model_path = model_path
        self.closed = False
        # Free it before interpreter teardown: llama-cpp-python's __del__ then fails loudly.
        atexit.register(_close_at_exit, weakref.ref(self))
        self.n_ctx = self._seqs.n_ctx
        self.vocab_size = self.model.n_vocab
        self._n_batch = n_batch
        self._lock = threading.RLock()
        self._tokens = np.zeros(0, dtype=np.int32)
        #: Leading live tokens whose KV came from prompt batches of two or more tokens.
        self._canonical = 0
        self._logits: np.ndarray | None = None
        self.prefix_cache = PrefixCache(cache_bytes)
        self._grammars: GrammarCache | None = None
        self.eos_ids = set(self.model.eog_ids)

    @property
    def metadata(self) -> dict[str, str]:
        return self.model.metadata

    @property
    def grammars(self) -> GrammarCache:
        if self._grammars is None:
            from llguidance.llamacpp import lltokenizer_from_vocab

            with warnings.catch_warnings():
                # llguidance calls a llama.cpp function that llama-cpp-python marks deprecated,
                # once per vocabulary entry.
                warnings.simplefilter("ignore", DeprecationWarning)
                tokenizer = lltokenizer_from_vocab(self.model.vocab, eos_token=self.model.eos)
            self._grammars = GrammarCache(tokenizer, self.vocab_size)
        return self._grammars

    def tokenize(self, text: str) -> np.ndarray:
        """Tokens of ``text``; special-token markup (chat templates) is recognised."""
        self._check_open()
        return self.model.tokenize(text)

    def detokenize(self, ids: list[int]) -> bytes:
        return self.model.detokenize(ids)

    def _check_open(self) -> None:
        if self.closed:  # llama.cpp would abort the whole process on a freed model
            raise EngineError(f"model {self.model_path} is closed")

    def close(self) -> None:
        """Free the model now rather than in ``__del__`` at interpreter exit."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._seqs.close()
            self.model.close()

    # -- KV management -----------------------------------------------------------------

    def _eval(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        """Append ``tokens`` to the context; return logits (last row, or one per token).

        Several tokens are evaluated in batches of at least two (see the module
        docstring); the context stays canonical only then.
        """
        rows = []
        canonical = len(tokens) > 1 and self._canonical == len(self._tokens)
        for start, stop in chunk_bounds(len(tokens), self._n_batch):
            chunk = [int(t) for t in tokens[start:stop]]
            n_past = len(self._tokens)
            if n_past + len(chunk) > self.n_ctx:
                raise EngineError(f"prompt needs more than the context size of {self.n_ctx} tokens")
            outputs = np.full(len(chunk), all_logits)
            outputs[-1] = True
            rows.extend(
                self._seqs.decode(
                    np.asarray(chunk, dtype=np.int32),
                    np.arange(n_past, n_past + len(chunk), dtype=np.int32),
                    np.zeros(len(chunk), dtype=np.int32),
                    outputs,
                )
            )
            self._tokens = np.concatenate([self._tokens, np.asarray(chunk, dtype=np.int32)])
        if canonical:
            self._canonical = len(self._tokens)
        self._logits = rows[-1] if canonical else None
        return np.stack(rows) if all_logits else rows[-1]

    def _truncate(self, n: int, save: bool = True) -> None:
        if n < len(self._tokens):
            if (
                save
                and self.prefix_cache.max_bytes > 0
                and len(self._tokens) - n >= _MIN_SAVED_TOKENS
                and not self.prefix_cache.covers(self._tokens)
            ):
                self.prefix_cache.put(self._save_state())
            self._seqs.seq_rm(0, n)
            self._tokens = self._tokens[:n]
            self._canonical = min(self._canonical, n)
            self._logits = None

    def _save_state(self) -> KVState:
        return KVState(self._tokens.copy(), self._seqs.state(0))

    def _restore_state(self, state: KVState) -> None:
        self._seqs.seq_rm(0, 0)
        if not self._seqs.restore(0, state.data):
            self._tokens = np.zeros(0, dtype=np.int32)
            self._canonical = 0
            raise EngineError("failed to restore a cached KV state")
        self._tokens = state.tokens.copy()
        self._canonical = len(self._tokens)
        self._logits = None

    def _sync(self, tokens: np.ndarray) -> tuple[np.ndarray, int]:
        """Make the context hold exactly ``tokens``; return (next-token logits, reused)."""
        self._check_open()
        if len(tokens) == 0:
            raise EngineError("empty prompt")
        if len(tokens) >= self.n_ctx:
            raise EngineError(
                f"prompt of {len(tokens)} tokens does not fit the context size of {self.n_ctx}"
            )
        # Decoded tokens' KV is dropped unsaved: a prompt reuses canonical KV only.
        self._truncate(self._canonical, save=False)
        live = common_prefix_len(self._tokens, tokens)
        saved, state = self.prefix_cache.best_match(tokens)
        if state is not None and saved > live:
            self._truncate(0)
            self._restore_state(state)
            live = saved
        if live == len(tokens) == len(self._tokens) and self._logits is not None:
            return self._logits, live
        # At least two tokens are evaluated, so the last one never runs alone.
        reuse = max(min(live, len(tokens) - 2), 0)
        self._truncate(reuse)
        return self._eval(tokens[reuse:]), reuse

    def reset(self) -> None:
        """Empty the live context without saving it (saved prefixes stay)."""
        with self._lock:
            self._truncate(0, save=False)

    def cache_prefix(self, text: str) -> int:
        """Evaluate ``text`` and keep its KV state; returns its length in tokens."""
        tokens = self.tokenize(text)
        with self._lock:
            self._sync(tokens)
            if not self.prefix_cache.covers(tokens):
                self.prefix_cache.put(self._save_state())
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
    ) -> Completion:
        """Continue ``prompt``; with a constraint, every token is masked by llguidance."""
        self._check_open()
        matcher = self.grammars.matcher(regex=regex, json_schema=json_schema)
        tokens = self.tokenize(prompt)
        rng = np.random.default_rng(seed)
        with self._lock:
            logits, cached = self._sync(tokens)
            budget = min(max_new_tokens, self.n_ctx - len(tokens))
            out: list[int] = []
            counts: Counter[int] = Counter()
            finish: dict = {"type": "length", "length": budget}
            text = ""
            for _ in range(max(budget, 0)):
                scores = logits.astype(np.float32, copy=True)
                if matcher is not None:
                    allowed = allowed_tokens(matcher, self.vocab_size)
                    if not allowed.any():
                        finish = {"type": "stop", "matched": None}
                        break
                    scores[~allowed] = -np.inf
                elif ignore_eos:
                    scores[list(self.eos_ids)] = -np.inf
                apply_penalties(scores, counts, sampling)
                if no_repeat_ngram:
                    ban_repeated_ngrams(scores, out, no_repeat_ngram)
                token = choose_token(scores, sampling, rng)
                if token in self.eos_ids:
                    finish = {"type": "stop", "matched": token}
                    break
                if matcher is not None and not matcher.consume_token(token):
                    raise EngineError(f"constraint rejected token {token}: {matcher.get_error()}")
                out.append(token)
                counts[token] += 1
                text = self.detokenize(out).decode("utf-8", errors="ignore")
                hit = _find_stop(text, stop)
                if hit is not None:
                    text = text[: hit[0]]
                    finish = {"type": "stop", "matched": hit[1]}
                    break
                if matcher is not None and matcher.is_stopped():
                    finish = {"type": "stop", "matched": None}
                    break
                logits = self._eval(np.asarray([token], dtype=np.int32))
        return Completion(text, len(tokens), cached, len(out), finish)

    def choice_logprobs(self, prompt: str, choices: list[str]) -> tuple[list[list], int, int]:
        """Per choice, ``(logprob, token_id, text)`` for each of its tokens after ``prompt``.

        Returns the lists, the prompt length and the number of prompt tokens reused.
        """
        prompt_ids = self.tokenize(prompt)
        results, cached = [], 0
        with self._lock:
            for i, choice in enumerate(choices):
                full = self.tokenize(prompt + choice)
                # Where prompt and choice merge into one token, score from the split point.
                split = min(common_prefix_len(full, prompt_ids), len(full) - 1)
                logits, reused = self._sync(full[:split])
                if i == 0:
                    cached = reused
                tail = full[split:]
                rows = [logits]
                if len(tail) > 1:
                    rows.extend(self._eval(tail[:-1], all_logits=True))
                results.append(
                    [
                        (
                            float(log_softmax(row)[tok]),
                            int(tok),
                            self.detokenize([int(tok)]).decode("utf-8", errors="replace"),
                        )
                        for row, tok in zip(rows, tail, strict=True)
                    ]
                )
        return results, len(prompt_ids), cached


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
