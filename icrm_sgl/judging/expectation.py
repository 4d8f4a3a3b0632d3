"""Expected values from a verdict's probabilities, and the reconciliation of two orders.

A greedy verdict reports one score or choice; the engine also knows how probable every
allowed value was (``meta["probabilities"]``). From that distribution come the mean score
(individual), the expected signed margin A++=+2 … B++=-2 and the probability that A is
the better reply, a tie counting half (pairwise; any judge of two replies by its
``Judge.margin``). A greedy label without
probabilities is the distribution with all its mass on the label. The two orders of a
pair are reconciled in ``pair_orders``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.judges import Judge
from icrm_sgl.judges.verdicts import SCORES

DECIMALS = 6

Distribution = Mapping[str, float]


def checked_distribution(
    probabilities: Any, allowed: tuple[str, ...], what: str
) -> dict[str, float]:
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
    checked = checked_distribution(as_text, tuple(str(s) for s in SCORES), "score")
    return {int(k): p for k, p in checked.items()}


def _pair_judge(judge: Judge) -> Judge:
    """The judge of two replies whose choices are read; an ``InputError`` for any other."""
    if judge.pair is None:
        raise InputError(f"judge {judge.name} compares no two replies")
    return judge


def choice_distribution(probabilities: Any, judge: Judge) -> dict[str, float]:
    """A distribution over a pair judge's choices (``A++`` … ``B++``), checked and normalised."""
    pair = _pair_judge(judge)  # its reward is its choice field (``PairSpec.check``)
    return checked_distribution(probabilities, pair.field_named(str(pair.reward)).texts, "choice")


def expected_score(probabilities: Any) -> float:
    """The mean score 1-10 under the distribution."""
    return sum(score * p for score, p in score_distribution(probabilities).items())


def pair_margin(choice: str, judge: Judge) -> float:
    """A choice's signed preference for A (``Judge.margin``): +2 (A++) … -2 (B++)."""
    return _pair_judge(judge).margin(choice)


def expected_margin(probabilities: Any, judge: Judge) -> float:
    """The expected signed preference for A: +2 (A++) … -2 (B++)."""
    pair = _pair_judge(judge)
    return sum(pair.margin(c) * p for c, p in choice_distribution(probabilities, pair).items())


def prob_a_better(probabilities: Any, judge: Judge) -> float:
    """P(A is better): the mass on choices for A (A+, A++) plus half the mass on ties (A=B)."""
    pair = _pair_judge(judge)
    dist = choice_distribution(probabilities, pair)
    return sum(_better(pair.margin(c)) * p for c, p in dist.items())


def _better(margin: float) -> float:
    return 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0


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


def expectations(judge: Judge, probabilities: Any) -> dict[str, float]:
    """The meta entry a greedy verdict gains from its reward field's distribution: the
    expected value under the judge's ``reward_key`` (``expected_score``, ``expected_margin``)."""
    if judge.reward is None:
        raise InputError(f"judge {judge.name} names no reward field (one, not weights)")
    meta = judge.probability_meta({judge.reward: {str(k): p for k, p in probabilities.items()}})
    return {judge.reward_key: meta[judge.reward_key]}
