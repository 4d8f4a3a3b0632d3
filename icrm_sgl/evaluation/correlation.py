"""Pearson, Spearman and Kendall (tau-b) correlations between a judge's rewards and human
scores, as Prometheus' Feedback Bench reports them. Each is None where it is undefined
(fewer than two values, or one side constant)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """The linear correlation of two equally long sequences."""
    _check(x, y)
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def ranks(values: Sequence[float]) -> list[float]:
    """Each value's rank from 1, tied values sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            out[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """The rank correlation: Pearson's over the (tie-averaged) ranks."""
    _check(x, y)
    return pearson(ranks(x), ranks(y))


def kendall(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b: concordant minus discordant pairs, adjusted for ties on either side."""
    _check(x, y)
    n = len(x)
    if n < 2:
        return None
    score = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            score += (dx > 0) - (dx < 0) if dy > 0 else (dx < 0) - (dx > 0) if dy < 0 else 0
    pairs = n * (n - 1) / 2
    tied_x, tied_y = _tied_pairs(x), _tied_pairs(y)
    if tied_x == pairs or tied_y == pairs:
        return None
    return max(-1.0, min(1.0, score / math.sqrt((pairs - tied_x) * (pairs - tied_y))))


def _tied_pairs(values: Sequence[float]) -> int:
    return sum(t * (t - 1) // 2 for t in Counter(values).values())


def _check(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y):
        raise ValueError(f"sequences of different lengths: {len(x)} and {len(y)}")
