"""How far several raters (a panel's members) agree on nominal labels, beyond what chance
gives: Cohen's kappa for two raters, Fleiss' kappa and Krippendorff's alpha for any number.

Each rater's labels are one sequence, item by item, every rater's of the same length; None
marks an item the rater did not label (a member that failed that example). Each statistic
is 1 for perfect agreement, 0 for agreement at chance level and negative below it; it is
None where it is undefined: fewer than two items to compare, or every label the same
category (the chance agreement is then 1, and the ratio 0 / 0).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from itertools import permutations

Label = Hashable
Ratings = Sequence[Label | None]


def cohen_kappa(a: Ratings, b: Ratings) -> float | None:
    """Cohen's kappa of two raters over the items both labelled: (p_o − p_e) / (1 − p_e),
    where p_o is the share of items they label alike and p_e = Σ_k p_a(k)·p_b(k) the share
    two raters with their label frequencies would share by chance."""
    _same_length([a, b])
    both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    n = len(both)
    if n < 2:
        return None
    observed = sum(x == y for x, y in both) / n
    first, second = Counter(x for x, _ in both), Counter(y for _, y in both)
    expected = sum(first[k] * second[k] for k in first) / n**2
    return _ratio(observed, expected)


def fleiss_kappa(raters: Sequence[Ratings]) -> float | None:
    """Fleiss' kappa over the items every rater labelled (it assumes as many labels per
    item): (P̄ − P̄_e) / (1 − P̄_e), where P̄ is the mean over items of the share of
    pairs of labels that agree and P̄_e = Σ_k p_k², p_k the share of all labels that are k."""
    _same_length(raters)
    m = len(raters)
    items = [labels for labels in zip(*raters, strict=True) if None not in labels]
    if m < 2 or len(items) < 2:
        return None
    counts = [Counter(labels) for labels in items]
    observed = sum(sum(c * (c - 1) for c in count.values()) for count in counts) / (
        len(items) * m * (m - 1)
    )
    total = sum(counts, Counter())
    expected = sum((c / (len(items) * m)) ** 2 for c in total.values())
    return _ratio(observed, expected)


def krippendorff_alpha(raters: Sequence[Ratings]) -> float | None:
    """Krippendorff's alpha for nominal labels, missing labels allowed: 1 − D_o / D_e over
    the items with at least two labels. Each such item with m labels adds 1 / (m − 1) to the
    coincidence o_ck of each ordered pair of its labels (c, k); with n_c = Σ_k o_ck and
    n = Σ_c n_c, D_o = Σ_{c≠k} o_ck / n and D_e = Σ_{c≠k} n_c·n_k / (n·(n − 1))."""
    _same_length(raters)
    units = [[x for x in labels if x is not None] for labels in zip(*raters, strict=True)]
    units = [values for values in units if len(values) >= 2]
    if len(units) < 2:
        return None
    coincidences: defaultdict[tuple[Label, Label], float] = defaultdict(float)
    for values in units:
        for c, k in permutations(values, 2):
            coincidences[c, k] += 1 / (len(values) - 1)
    totals: defaultdict[Label, float] = defaultdict(float)
    for (c, _), o in coincidences.items():
        totals[c] += o
    n = sum(totals.values())
    disagree = sum(o for (c, k), o in coincidences.items() if c != k)
    by_chance = sum(totals[c] * totals[k] for c, k in permutations(totals, 2))
    if by_chance == 0:
        return None
    return 1 - (n - 1) * disagree / by_chance


def _ratio(observed: float, expected: float) -> float | None:
    """A kappa from its observed and chance agreement; None when chance agreement is 1."""
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


def _same_length(raters: Sequence[Ratings]) -> None:
    lengths = {len(labels) for labels in raters}
    if len(lengths) > 1:
        raise ValueError(f"raters labelled different numbers of items: {sorted(lengths)}")
