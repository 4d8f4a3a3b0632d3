"""llguidance grammars for the local engine: compiled once per text, masks as numpy arrays."""

from __future__ import annotations

import json
import threading

import llguidance
import numpy as np

from icrm_sgl.errors import EngineError


class GrammarCache:
    """Compiles regex / JSON-schema constraints once and hands out fresh matchers."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, vocab_size: int) -> None:
        self._tokenizer = tokenizer
        self.vocab_size = vocab_size
        self._pristine: dict[tuple[str, str], llguidance.LLMatcher] = {}
        self._lock = threading.Lock()

    def matcher(self, *, regex: str | None = None, json_schema: str | None = None):
        """A new matcher in its start state, or None when there is no constraint."""
        if regex is not None:
            key = ("regex", regex)
        elif json_schema is not None:
            key = ("json", json_schema)
        else:
            return None
        with self._lock:
            base = self._pristine.get(key)
            if base is None:
                base = self._compile(*key)
                self._pristine[key] = base
        return base.deep_copy()

    def _compile(self, kind: str, text: str) -> llguidance.LLMatcher:
        if kind == "regex":
            grammar = llguidance.LLMatcher.grammar_from_regex(text)
        else:
            schema = json.loads(text)
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                schema, defaults={"whitespace_flexible": False}
            )
        matcher = llguidance.LLMatcher(self._tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise EngineError(f"invalid {kind} constraint: {matcher.get_error()}")
        return matcher


def allowed_tokens(matcher: llguidance.LLMatcher, vocab_size: int) -> np.ndarray:
    """Boolean mask over the vocabulary of the tokens the matcher accepts next."""
    words = np.empty((vocab_size + 31) // 32, dtype=np.int32)
    matcher.unsafe_compute_mask_ptr(words.ctypes.data, words.nbytes)
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:vocab_size].astype(bool)
