"""What each KV sequence of a llama.cpp context holds, and how a call's prompt gets there.

A call's prompt is brought into its sequence by keeping the longest common token prefix
(from the live sequence or from a saved state) and evaluating only the rest. Same input,
same numbers: llama.cpp's CPU kernels round differently when a batch holds one token of a
sequence than when it holds several (every batch of two or more gives bit-identical KV
and logits, whatever its size; a one-token row is the same alone or in a decode step
beside other sequences). So each sequence records, per token, whether its KV came from a
one-token batch ("stepped": decoding) or from a chunk, and the KV is a function of the
tokens and those flags alone. A call's prompt keeps the flags its own program run's
previous call left for the same tokens (a program's next field reuses the text it
decoded, without evaluating it again), the rest is chunked; when another call took the
sequence in between, the same flags are rebuilt (stepped tokens one at a time), so what
the cache held never changes a number. Saved states hold chunked tokens only; a prompt
computed mostly afresh is also kept on disk (``state_store``), so that the next process
starts from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from icrm_sgl.engines.local.llama_adapter import SequenceContext
from icrm_sgl.engines.local.prefix_cache import PrefixCache
from icrm_sgl.engines.local.state_store import KVState, common_prefix_len
from icrm_sgl.errors import EngineError

#: A context is saved before truncation only when at least this many tokens would be lost.
_MIN_SAVED_TOKENS = 64
#: Logits rows a sequence keeps for reuse (each is one vocabulary of float32).
_KEPT_LOGITS = 4


@dataclass
class Slot:
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


class SequenceKV:
    """The sequences of one context: their tokens, flags and logits, kept in step with the
    KV that llama.cpp holds for them (every call into the context runs on its scheduler)."""

    def __init__(
        self,
        seqs: SequenceContext,
        prefix_cache: PrefixCache,
        *,
        check_open: Callable[[], None],
    ) -> None:
        self._seqs = seqs
        self.scheduler = seqs.scheduler
        self.prefix_cache = prefix_cache
        self.n_ctx = seqs.n_ctx
        #: Raises once the model is closed (llama.cpp aborts the process on a freed model).
        self._check_open = check_open
        self.slots = [Slot(i) for i in range(seqs.n_seq_max)]

    def _decode(
        self, tokens: np.ndarray, positions: np.ndarray, seqs: np.ndarray, outputs: np.ndarray
    ) -> np.ndarray:
        self._check_open()
        # The whole call on the loop: a wrapper of ``decode`` (a meter) times llama.cpp alone.
        return self.scheduler.call(self._seqs.decode, tokens, positions, seqs, outputs)

    def step(self, slot: Slot, token: int) -> np.ndarray:
        """Append one decoded token; its logits come from a step shared with other calls."""
        self._check_open()
        pos = len(slot.tokens)
        if pos + 1 > self.n_ctx:
            raise EngineError(f"the context size of {self.n_ctx} tokens is full")
        row = self.scheduler.step(slot.seq, token, pos)
        slot.append(np.array([token]), stepped=True)
        return row

    def eval(self, slot: Slot, tokens: np.ndarray) -> np.ndarray:
        """Append ``tokens`` to the context; return the logits after the last.

        Several tokens are evaluated in chunks of at least two (see the module docstring);
        one token alone is a stepped token.
        """
        rows: list[np.ndarray] = []
        for start, stop in chunk_bounds(len(tokens), self._seqs.n_batch):
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

    def truncate(self, slot: Slot, n: int, save: bool = True) -> None:
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
            self.cut(slot, chunked)
            self.prefix_cache.put(self.save_state(slot))
        self.cut(slot, n)

    def cut(self, slot: Slot, n: int) -> None:
        if n < len(slot.tokens):
            self._check_open()
            self._seqs.seq_rm(slot.seq, n)
            slot.cut(n)

    def save_state(self, slot: Slot) -> KVState:
        self._check_open()
        return KVState(slot.tokens.copy(), self._seqs.state(slot.seq))

    def _restore_state(self, slot: Slot, state: KVState) -> bool:
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

    def _target(self, tokens: np.ndarray, history: Slot | None) -> _Target:
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

    def _matching(self, slot: Slot, target: _Target) -> int:
        """How many leading tokens the sequence holds exactly as ``target`` needs them."""
        live = common_prefix_len(slot.tokens, target.tokens)
        differ = np.flatnonzero(slot.stepped[:live] != target.stepped[:live])
        return int(differ[0]) if len(differ) else live

    def _replay(self, slot: Slot, target: _Target, stop: int) -> None:
        """Evaluate ``target``'s tokens from the end of ``slot`` up to ``stop``, each
        stepped token alone and each run of chunked ones in chunks."""
        i = len(slot.tokens)
        while i < stop:
            if target.stepped[i]:
                self.eval(slot, target.tokens[i : i + 1])
                i += 1
                continue
            j = i
            while j < stop and not target.stepped[j]:
                j += 1
            # A lone chunked token is evaluated with its successor, which is then dropped.
            self.eval(slot, target.tokens[i : max(j, i + 2)])
            self.cut(slot, j)
            i = j

    def sync(self, slot: Slot, tokens: np.ndarray, history: Slot | None) -> tuple[np.ndarray, int]:
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
            self.truncate(slot, live)
            return slot.logits[live], live
        live = self._restore_best(slot, target, live)
        reuse = max(min(live, len(tokens) - 2), 0)
        self.truncate(slot, reuse)
        self._replay(slot, target, target.chunk_from)
        logits = self.eval(slot, tokens[len(slot.tokens) :])
        self._persist_if_new(slot, reuse)
        return logits, reuse

    def _restore_best(self, slot: Slot, target: _Target, live: int) -> int:
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
        self.truncate(slot, 0)
        if not self._restore_state(slot, state):
            return 0
        self.cut(slot, saved)
        return saved

    def _persist_if_new(self, slot: Slot, reused: int) -> None:
        """Keep a prompt that was mostly computed afresh on disk, so that the next process
        starts with it (a prompt that reused most of its tokens adds little to what is
        kept already: a file per example would only churn the disk)."""
        store = self.prefix_cache.store
        n = len(slot.tokens)
        if store is None or n < _MIN_SAVED_TOKENS or 2 * reused >= n:
            return
        if slot.chunked_len() < n or store.best_match(slot.tokens)[0] == n:
            return  # a saved state holds chunked tokens only; or this one is kept already
        self.prefix_cache.put(self.save_state(slot), persist=True)


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` batches of at most ``size`` covering ``n`` tokens, none of one token
    unless ``n`` is 1 (a lone token takes llama.cpp's differently rounded path)."""
    bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        (a, b), (_, c) = bounds[-2], bounds[-1]
        bounds[-2:] = [(a, b - 1), (b - 1, c)]
    return bounds
