"""Score judged pairs: accuracy, ties, failures and position flips, per subset and overall.

Input is the runner's records, one per judged pair (see the Evaluation section of the
design notes). Margins are recomputed from the raw judgements and checked against the
stored ones, so a report never rests on numbers it cannot reproduce. A failed pair counts
as wrong: accuracy is always over every pair. RewardBench runs also get the official
section scores (subset accuracies weighted by ``EXAMPLE_COUNTS``, sections averaged).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.rewardbench import EXAMPLE_COUNTS, SUBSET_MAPPING, SUBSETS
from icrm_sgl.schemas import CHOICES, SCORES, choice_margin

PAIRWISE = "pairwise"
INDIVIDUAL = "individual"
MODES = (PAIRWISE, INDIVIDUAL)

#: Order name -> sign that turns the presented A-vs-B margin into "chosen is better".
ORDER_SIGN = {"chosen_first": 1, "rejected_first": -1}
#: Order name -> the side (A or B) the chosen reply was shown as.
ORDER_TRUTH = {"chosen_first": "A", "rejected_first": "B"}

DECIMALS = 4


@dataclass(frozen=True)
class _Outcome:
    """What one judged pair contributes to the counts."""

    subset: str
    margin: float | None
    flip: bool | None  # None unless at least two orders gave a valid verdict


# ----------------------------------------------------------------------------- pairwise


def judgement_margin(judgement: dict[str, Any], where: str = "judgement") -> float | None:
    """The chosen reply's signed margin from one order's verdict; None if that order failed."""
    if not isinstance(judgement, dict):
        raise InputError(f"{where}: expected an object, got {type(judgement).__name__}")
    order = judgement.get("order")
    if order not in ORDER_SIGN:
        raise InputError(f"{where}: order must be one of {', '.join(ORDER_SIGN)}, got {order!r}")
    choice = judgement.get("choice")
    if judgement.get("error") is not None or choice is None:
        return None
    if choice not in CHOICES:
        raise InputError(f"{where}: choice must be one of {', '.join(CHOICES)}, got {choice!r}")
    return float(ORDER_SIGN[order] * choice_margin(choice))


def _order_margins(judgements: Any, where: str) -> list[float]:
    if not isinstance(judgements, list) or not judgements:
        raise InputError(f"{where}: judgements must be a non-empty list")
    margins = (judgement_margin(j, f"{where}: judgement {i}") for i, j in enumerate(judgements))
    return [m for m in margins if m is not None]


def reconcile(judgements: list[dict]) -> float | None:
    """Mean chosen-side margin over the valid orders; None when every order failed."""
    margins = _order_margins(judgements, "judgements")
    return sum(margins) / len(margins) if margins else None


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _flip(margins: list[float]) -> bool | None:
    """Whether the orders disagree on the winner (a tie disagrees with a win)."""
    if len(margins) < 2:
        return None
    return len({_sign(m) for m in margins}) > 1


# ----------------------------------------------------------------------------- records


def _where(record: dict[str, Any], index: int) -> str:
    rid = record.get("id")
    return f"result record {index}" + (f" (id {rid!r})" if rid is not None else "")


def _valid_score(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or value not in SCORES:
        raise InputError(f"{where}: score must be an integer 1-10 or null, got {value!r}")
    return int(value)


def _individual_scores(record: dict[str, Any], where: str) -> tuple[int | None, int | None]:
    scores = record.get("scores")
    if not isinstance(scores, dict):
        raise InputError(f"{where}: individual record needs a 'scores' object")
    chosen = _valid_score(scores.get("chosen"), f"{where}: chosen")
    rejected = _valid_score(scores.get("rejected"), f"{where}: rejected")
    return chosen, rejected


def _check_stored(record: dict[str, Any], margin: float | None, where: str) -> None:
    """The runner's stored margin and failed flag must match what the raw data gives."""
    if "margin" in record:
        stored = record["margin"]
        same = (stored is None and margin is None) or (
            stored is not None and margin is not None and math.isclose(stored, margin)
        )
        if not same:
            raise InputError(
                f"{where}: stored margin {stored!r} disagrees with its verdicts ({margin!r})"
            )
    if "failed" in record and bool(record["failed"]) != (margin is None):
        raise InputError(f"{where}: 'failed' is {record['failed']!r} but margin is {margin!r}")


def _outcome(record: Any, index: int, mode: str) -> _Outcome:
    if not isinstance(record, dict):
        raise InputError(f"result record {index}: expected an object")
    where = _where(record, index)
    subset = record.get("subset")
    if not isinstance(subset, str) or not subset:
        raise InputError(f"{where}: missing or empty 'subset'")
    if mode == PAIRWISE:
        margins = _order_margins(record.get("judgements"), where)
        margin = sum(margins) / len(margins) if margins else None
        flip = _flip(margins)
    else:
        chosen, rejected = _individual_scores(record, where)
        margin = None if chosen is None or rejected is None else float(chosen - rejected)
        flip = None
    _check_stored(record, margin, where)
    return _Outcome(subset=subset, margin=margin, flip=flip)


def _mode(records: list[dict]) -> str:
    """The one judging mode of the run; a report mixing modes would mean nothing."""
    if not records:
        raise InputError("no judged records to score")
    modes = {r.get("mode") if isinstance(r, dict) else None for r in records}
    if len(modes) > 1 or not modes <= set(MODES):
        shown = ", ".join(sorted(map(repr, modes)))
        raise InputError(f"result records must share one mode out of {MODES}; found {shown}")
    return modes.pop()


# ----------------------------------------------------------------------------- counting


def _rate(count: int, total: int) -> float | None:
    return round(count / total, DECIMALS) if total else None


def _summary(outcomes: list[_Outcome]) -> dict[str, Any]:
    """Counts and rates over a group of pairs (a subset, or the whole run)."""
    n = len(outcomes)
    correct = sum(o.margin is not None and o.margin > 0 for o in outcomes)
    ties = sum(o.margin == 0 for o in outcomes)
    failures = sum(o.margin is None for o in outcomes)
    flip_n = sum(o.flip is not None for o in outcomes)
    flips = sum(o.flip is True for o in outcomes)
    return {
        "n": n,
        "accuracy": _rate(correct, n),
        "correct": correct,
        "ties": ties,
        "tie_rate": _rate(ties, n),
        "failures": failures,
        "failure_rate": _rate(failures, n),
        "flips": flips,
        "flip_rate": _rate(flips, flip_n),
        "flip_n": flip_n,
    }


def _choice_distribution(records: list[dict]) -> dict[str, dict[str, int]]:
    """How often each choice was given, split by which side truly was better."""
    counts: dict[str, Counter[str]] = {"A": Counter(), "B": Counter()}
    for record in records:
        for judgement in record["judgements"]:
            if judgement.get("error") is None and judgement.get("choice") is not None:
                counts[ORDER_TRUTH[judgement["order"]]][judgement["choice"]] += 1
    return {truth: {c: counts[truth][c] for c in CHOICES} for truth in ("A", "B")}


def _score_histogram(records: list[dict]) -> dict[str, dict[str, int]]:
    """How often each score 1-10 was given to chosen and to rejected replies."""
    counts: dict[str, Counter[int]] = {"chosen": Counter(), "rejected": Counter()}
    for record in records:
        for side in counts:
            score = record["scores"].get(side)
            if score is not None:
                counts[side][score] += 1
    return {side: {str(s): counts[side][s] for s in SCORES} for side in counts}


# ----------------------------------------------------------------------------- RewardBench


def rewardbench_scores(accuracies: dict[str, float]) -> dict[str, Any]:
    """Official RewardBench numbers: count-weighted section means, then their mean."""
    sections: dict[str, float] = {}
    for section, subsets in SUBSET_MAPPING.items():
        present = [s for s in subsets if s in accuracies]
        if present:
            weight = sum(EXAMPLE_COUNTS[s] for s in present)
            total = sum(accuracies[s] * EXAMPLE_COUNTS[s] for s in present)
            sections[section] = total / weight
    score = sum(sections.values()) / len(sections) if sections else None
    plain = sum(accuracies.values()) / len(accuracies) if accuracies else None
    return {
        "sections": {k: round(v, DECIMALS) for k, v in sections.items()},
        "score": None if score is None else round(score, DECIMALS),
        "plain_mean": None if plain is None else round(plain, DECIMALS),
        "missing_subsets": [s for s in SUBSETS if s not in accuracies],
        "unknown_subsets": sorted(s for s in accuracies if s not in EXAMPLE_COUNTS),
    }


def _wants_rewardbench(flag: bool | None, subsets: set[str]) -> bool:
    if flag is not None:
        return flag
    return bool(subsets) and subsets <= set(SUBSETS)


def unique_records(records: list[Any]) -> list[Any]:
    """Each pair id once (its first record), whatever the results file holds."""
    seen: set[str] = set()
    unique = []
    for record in records:
        rid = record.get("id") if isinstance(record, dict) else None
        if rid is not None:
            if str(rid) in seen:
                continue
            seen.add(str(rid))
        unique.append(record)
    return unique


def compute_metrics(records: list[dict], rewardbench: bool | None = None) -> dict:
    """Every number the evaluation report shows, as a JSON-serialisable dict; a pair id
    that appears more than once counts once."""
    records = unique_records(records)
    mode = _mode(records)
    outcomes = [_outcome(r, i, mode) for i, r in enumerate(records)]
    groups: dict[str, list[_Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[outcome.subset].append(outcome)
    per_subset = {s: _summary(groups[s]) for s in sorted(groups)}
    metrics: dict[str, Any] = {
        "mode": mode,
        "n": len(records),
        "overall": _summary(outcomes),
        "per_subset": per_subset,
    }
    if mode == PAIRWISE:
        metrics["choice_distribution"] = _choice_distribution(records)
    else:
        metrics["score_histogram"] = _score_histogram(records)
    if _wants_rewardbench(rewardbench, set(groups)):
        exact = {s: per_subset[s]["correct"] / per_subset[s]["n"] for s in per_subset}
        metrics["rewardbench"] = rewardbench_scores(exact)
    return metrics


# ----------------------------------------------------------------------------- table


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _subset_rows(metrics: dict) -> list[str]:
    rows = [*metrics["per_subset"].items(), ("overall", metrics["overall"])]
    width = max(len("subset"), *(len(name) for name, _ in rows))
    header = (
        f"{'subset':<{width}}  {'n':>6}  {'accuracy':>8}  {'ties':>6}  "
        f"{'failures':>8}  {'flips':>6}  {'flip n':>6}"
    )
    lines = [header, "-" * len(header)]
    for name, s in rows:
        if name == "overall":
            lines.append("-" * len(header))
        lines.append(
            f"{name:<{width}}  {s['n']:>6}  {_pct(s['accuracy']):>8}  {_pct(s['tie_rate']):>6}  "
            f"{_pct(s['failure_rate']):>8}  {_pct(s['flip_rate']):>6}  {s['flip_n']:>6}"
        )
    return lines


def _distribution_rows(metrics: dict) -> list[str]:
    if "choice_distribution" in metrics:
        dist, keys, label = metrics["choice_distribution"], CHOICES, "better side"
        names = {"A": "truth A", "B": "truth B"}
    elif "score_histogram" in metrics:
        dist, keys, label = metrics["score_histogram"], [str(s) for s in SCORES], "score"
        names = {"chosen": "chosen", "rejected": "rejected"}
    else:
        return []
    lines = [f"{label:<11}" + "".join(f"{k:>6}" for k in keys)]
    for side, counts in dist.items():
        lines.append(f"{names[side]:<11}" + "".join(f"{counts[k]:>6}" for k in keys))
    return lines


def _rewardbench_rows(metrics: dict) -> list[str]:
    rb = metrics.get("rewardbench")
    if rb is None:
        return []
    lines = ["RewardBench"]
    lines += [f"  {name:<10} {_pct(value):>7}" for name, value in rb["sections"].items()]
    lines.append(f"  {'score':<10} {_pct(rb['score']):>7}  (mean of the sections above)")
    lines.append(f"  {'plain mean':<10} {_pct(rb['plain_mean']):>7}  (unweighted subset mean)")
    if rb["missing_subsets"]:
        lines.append(f"  missing subsets ({len(rb['missing_subsets'])}): ")
        lines[-1] += ", ".join(rb["missing_subsets"])
    if rb.get("unknown_subsets"):
        lines.append(f"  not RewardBench subsets: {', '.join(rb['unknown_subsets'])}")
    return lines


def format_table(metrics: dict) -> str:
    """A fixed-width text report of the metrics, for the terminal and report files."""
    blocks = [
        [f"{metrics['mode']} judging, {metrics['n']} pairs"],
        _subset_rows(metrics),
        _distribution_rows(metrics),
        _rewardbench_rows(metrics),
    ]
    return "\n\n".join("\n".join(block) for block in blocks if block) + "\n"
