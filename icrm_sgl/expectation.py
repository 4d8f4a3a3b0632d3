"""Expected values from a verdict's probabilities, and the reconciliation of two orders.

A greedy verdict reports one score or choice; the engine also knows how probable every
allowed value was (``meta["probabilities"]``). From that distribution come the mean score
(individual), the expected signed margin A++=+2 … B++=-2 and the probability that A is
the better reply, a tie counting half (pairwise). A greedy label without probabilities
is the distribution with all its mass on the label. The two orders of a pair are
reconciled in ``pair_orders``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.judges import Judge, as_judge
from icrm_sgl.schemas import CHOICES, SCORES, choice_margin

DECIMALS = 6

Distribution = Mapping[str, float]


def _checked(probabilities: Any, allowed: tuple[str, ...], what: str) -> dict[str, float]:
    """The distribution as floats over ``allowed``; an ``InputError`` for anything else."""
    if not isinstance(probabilities, Mapping) or not probabilities:
        raise InputError(f"{what} probabilities must be a non-empty object")
    unknown = sorted(set(probabilities) - set(allowed))
    if unknown:
        raise InputError(f"{what} probabilities: unknown value(s) {unknown}")
    out = {}
    for key, value in probabilities.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InputError(f"{what} probabilities: {key!r} is {value!r}, not a probability")
        out[key] = float(value)
    total = sum(out.values())
    if not 0.99 <= total <= 1.01:
        raise InputError(f"{what} probabilities sum to {total:.4f}, not 1")
    return {key: p / total for key, p in out.items()}


def score_distribution(probabilities: Any) -> dict[int, float]:
    """A score distribution keyed by the integer score (keys may be "1".."10" or ints)."""
    as_text = (
        {str(k): v for k, v in probabilities.items()}
        if isinstance(probabilities, Mapping)
        else probabilities
    )
    checked = _checked(as_text, tuple(str(s) for s in SCORES), "score")
    return {int(k): p for k, p in checked.items()}


def choice_distribution(probabilities: Any) -> dict[str, float]:
    """A choice distribution over ``A++`` … ``B++``, checked and normalised."""
    return _checked(probabilities, CHOICES, "choice")


def expected_score(probabilities: Any) -> float:
    """The mean score 1-10 under the distribution."""
    return sum(score * p for score, p in score_distribution(probabilities).items())


def expected_margin(probabilities: Any) -> float:
    """The expected signed preference for A: +2 (A++) … -2 (B++)."""
    return sum(choice_margin(c) * p for c, p in choice_distribution(probabilities).items())


def prob_a_better(probabilities: Any) -> float:
    """P(A is better): the mass on A+ and A++ plus half the mass on A=B."""
    dist = choice_distribution(probabilities)
    return sum(
        p * (1.0 if choice_margin(c) > 0 else 0.5 if c == "A=B" else 0.0) for c, p in dist.items()
    )


def prob_first_scores_higher(first: Any, second: Any) -> float:
    """P(first reply's score > second's), ties counting half, the two scores independent."""
    one, two = score_distribution(first), score_distribution(second)
    return sum(
        p * q * (1.0 if s > t else 0.5 if s == t else 0.0)
        for s, p in one.items()
        for t, q in two.items()
    )


def point_mass(value: str | int) -> dict[str, float]:
    """A greedy label as a distribution: all mass on it (for a verdict without probabilities)."""
    return {str(value): 1.0}


def expectations(judge: Judge | str, probabilities: Any) -> dict[str, float]:
    """The meta entry a greedy verdict gains from its reward field's distribution: the
    expected value under the judge's ``reward_key`` (``expected_score``, ``expected_margin``)."""
    checked = as_judge(judge)
    if checked.reward is None:
        raise InputError(f"judge {checked.name} names no reward field")
    meta = checked.probability_meta({checked.reward: {str(k): p for k, p in probabilities.items()}})
    return {checked.reward_key: meta[checked.reward_key]}
