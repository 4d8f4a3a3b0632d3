"""A bounded LRU of llama.cpp KV states keyed by their token sequences.

When the engine is about to discard a long context (another request needs a different
suffix), it keeps a copy of the KV state here; a later request that shares a longer
prefix with a stored state than with the live context restores it instead of
recomputing. ``cache_prefix`` stores the few-shot prefix the same way.

With a disk tier (``StateStore``), the states ``put`` with ``persist`` are also written
to disk, and a lookup that disk answers better than memory loads the file: a new process
then starts with the prefix its predecessor computed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from icrm_sgl.engines.local.state_store import KVState, StateStore, common_prefix_len


class PrefixCache:
    """LRU of ``KVState`` bounded by total bytes; the newest entry is always kept.

    Safe to share between the threads of the engine's sequences.
    """

    def __init__(self, max_bytes: int, store: StateStore | None = None) -> None:
        self.max_bytes = max_bytes
        self.store = store
        self._entries: OrderedDict[bytes, KVState] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def covers(self, tokens: np.ndarray) -> bool:
        """True when some entry already holds ``tokens`` as a prefix of its own."""
        with self._lock:
            return self._covers(tokens)

    def _covers(self, tokens: np.ndarray) -> bool:
        return any(
            len(e.tokens) >= len(tokens) and common_prefix_len(e.tokens, tokens) == len(tokens)
            for e in self._entries.values()
        )

    def put(self, state: KVState, persist: bool = False) -> None:
        """Keep ``state`` in memory; with ``persist``, on disk too (when there is a disk tier)."""
        with self._lock:
            self._put(state)
        if persist and self.store is not None:
            self.store.put(state)

    def discard(self, state: KVState) -> None:
        """Forget a state llama.cpp refused, in memory and on disk."""
        with self._lock:
            dropped = self._entries.pop(state.tokens.tobytes(), None)
            if dropped is not None:
                self._bytes -= len(dropped.data)
        if self.store is not None:
            self.store.drop(self.store.path_for(state.tokens))

    def _put(self, state: KVState) -> None:
        if self.max_bytes <= 0 or len(state.data) > self.max_bytes:
            return
        key = state.tokens.tobytes()
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old.data)
        # An entry that is a strict prefix of the new one is now redundant.
        for k, e in list(self._entries.items()):
            if len(e.tokens) < len(state.tokens) and (
                common_prefix_len(e.tokens, state.tokens) == len(e.tokens)
            ):
                del self._entries[k]
                self._bytes -= len(e.data)
        self._entries[key] = state
        self._bytes += len(state.data)
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.data)

    def best_match(self, tokens: np.ndarray, beyond: int = 0) -> tuple[int, KVState | None]:
        """The entry sharing the longest prefix with ``tokens``, and that length; a state on
        disk that shares more than it and more than ``beyond`` tokens is loaded, and kept
        in memory."""
        with self._lock:
            n, state = self._best_match(tokens)
        if self.store is None:
            return n, state
        on_disk, path = self.store.best_match(tokens)
        loaded = self.store.load(path) if path is not None and on_disk > max(n, beyond) else None
        if loaded is None:
            return n, state
        self.put(loaded)
        return common_prefix_len(loaded.tokens, tokens), loaded

    def _best_match(self, tokens: np.ndarray) -> tuple[int, KVState | None]:
        best, best_len = None, 0
        for key, entry in self._entries.items():
            n = common_prefix_len(entry.tokens, tokens)
            if n > best_len:
                best, best_len = key, n
        if best is None:
            return 0, None
        self._entries.move_to_end(best)
        return best_len, self._entries[best]
