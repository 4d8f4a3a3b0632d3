"""Next-token choice from a logits vector: greedy at temperature 0, else seeded sampling."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sampling:
    """The sampling settings of one generation call."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 1e-5


def apply_penalties(logits: np.ndarray, generated: Counter[int], sampling: Sampling) -> None:
    """OpenAI-style frequency / presence penalties over the tokens generated so far."""
    if not generated or not (sampling.frequency_penalty or sampling.presence_penalty):
        return
    ids = np.fromiter(generated.keys(), dtype=np.int64)
    counts = np.fromiter(generated.values(), dtype=np.float32)
    logits[ids] -= counts * sampling.frequency_penalty + sampling.presence_penalty


def ban_repeated_ngrams(logits: np.ndarray, generated: list[int], n: int) -> None:
    """Forbid tokens that would repeat an n-gram already generated in this call.

    A tiny model decoding greedily loops on a phrase until its budget runs out; this
    stops the loop. When every allowed token would be banned, nothing is banned.
    """
    if n < 2 or len(generated) < n:
        return
    context = tuple(generated[len(generated) - n + 1 :])
    banned = {
        generated[i + n - 1]
        for i in range(len(generated) - n + 1)
        if tuple(generated[i : i + n - 1]) == context
    }
    if not banned:
        return
    ids = np.fromiter(banned, dtype=np.int64)
    kept = logits[ids].copy()
    logits[ids] = -np.inf
    if not np.isfinite(logits).any():
        logits[ids] = kept


def choose_token(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """Pick a token id; tokens at -inf (masked out) are never chosen."""
    if sampling.greedy:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / sampling.temperature
    order = np.argsort(-scaled)
    finite = np.isfinite(scaled[order])
    order = order[finite] if finite.any() else order[:1]
    if sampling.top_k > 0:
        order = order[: sampling.top_k]
    probs = np.exp(scaled[order] - scaled[order[0]])
    probs /= probs.sum()
    keep = len(probs)
    if sampling.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(probs), sampling.top_p) + 1)
    if sampling.min_p > 0.0:
        keep = min(keep, int((probs >= sampling.min_p * probs[0]).sum()))
    probs = probs[: max(keep, 1)]
    return int(rng.choice(order[: len(probs)], p=probs / probs.sum()))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - np.max(logits)
    return shifted - np.log(np.exp(shifted).sum())
