"""The one reconciler of a pair judged in two orders (A/B, then B/A).

Each valid verdict becomes a ``View`` from one reference reply: A of the first order for
``score --both-orders`` and ``judge_pair``, the chosen reply for ``eval``. A verdict
shown with the sides swapped is read back with its sign turned. Reconciling averages
the views, which cancels a judge's preference for a position (the means of the margins
and of P(better) equal those of the averaged distributions: both are linear in them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from icrm_sgl.judges import Judge
from icrm_sgl.judging.expectation import (
    DECIMALS,
    choice_distribution,
    expected_margin,
    pair_margin,
    point_mass,
    prob_a_better,
)


@dataclass(frozen=True)
class View:
    """One valid verdict seen from the reference reply (+ means it is the better one)."""

    greedy: float  # signed margin from the greedy label(s), +2 ... -2
    expected: float  # expected signed margin under the reported probabilities
    p_better: float  # P(the reference reply is better), ties counting half


def choice_view(choice: str, probabilities: Any | None, swapped: bool, judge: Judge) -> View:
    """A verdict of ``judge`` (a judge of two replies) as a view; ``swapped`` when the
    reference reply was shown as B. Without probabilities the greedy choice is a point mass."""
    dist = (
        point_mass(choice) if probabilities is None else choice_distribution(probabilities, judge)
    )
    sign = -1 if swapped else 1
    p_a = prob_a_better(dist, judge)
    return View(
        float(sign * pair_margin(choice, judge)),
        sign * expected_margin(dist, judge),
        1.0 - p_a if swapped else p_a,
    )


def disagree(margins: Sequence[float]) -> bool | None:
    """Whether the orders disagree on the winner (a tie disagrees with a win); None with
    fewer than two orders."""
    if len(margins) < 2:
        return None
    return len({(m > 0) - (m < 0) for m in margins}) > 1


@dataclass(frozen=True)
class Reconciliation:
    """A pair's views averaged: the position-debiased numbers and whether the orders'
    greedy winners differ (None for one order)."""

    p_a_better: float
    expected_margin: float
    greedy_margin: float
    flipped: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "p_a_better": round(self.p_a_better, DECIMALS),
            "expected_margin": round(self.expected_margin, DECIMALS),
            "greedy_margin": self.greedy_margin,
            "flipped": self.flipped,
        }


def reconcile(views: Sequence[View]) -> Reconciliation | None:
    """The mean of the views; None when no order gave a valid verdict."""
    if not views:
        return None
    n = len(views)
    return Reconciliation(
        p_a_better=sum(v.p_better for v in views) / n,
        expected_margin=sum(v.expected for v in views) / n,
        greedy_margin=sum(v.greedy for v in views) / n,
        flipped=disagree([v.greedy for v in views]),
    )
