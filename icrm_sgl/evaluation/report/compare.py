"""Two runs of one set side by side: which examples changed decision."""

from __future__ import annotations

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.report.model import Change, Run


def changes(a: Run, b: Run) -> list[Change]:
    """Each example of both runs, in A's order; an ``InputError`` when they judged
    different examples."""
    first = {e.id: e for e in a.examples}
    second = {e.id: e for e in b.examples}
    if first.keys() != second.keys():
        only_a, only_b = len(first.keys() - second.keys()), len(second.keys() - first.keys())
        raise InputError(
            f"{a.title} and {b.title} judged different examples ({only_a} only in the "
            f"first, {only_b} only in the second): compare two runs of the same set"
        )
    return [
        Change(
            id=key,
            subset=one.subset,
            decisions=[one.decisions, second[key].decisions],
            correct=[one.correct, second[key].correct],
            changed=one.decisions != second[key].decisions or one.correct != second[key].correct,
        )
        for key, one in first.items()
    ]
