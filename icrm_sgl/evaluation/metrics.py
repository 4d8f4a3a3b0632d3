"""Score judged pairs: accuracy, ties, failures and position flips, per subset and overall.

Input is the runner's records, one per judged pair (see the Evaluation section of the
design notes). Margins are recomputed from the raw judgements and checked against the
stored ones, so a report never rests on numbers it cannot reproduce. A failed pair counts
as wrong: accuracy is always over every pair. RewardBench runs also get the official
section scores (subset accuracies weighted by ``EXAMPLE_COUNTS``, sections averaged).

The judge reads its records: a judge of two replies (``pair``) gives one verdict per
order, numbered by its reward field's ``scale`` and read back through ``pair.swapped``; a
judge of one reply gives each reply's reward. Replies scored by people (``human_score``)
get the correlations between the reward and those scores instead of accuracy.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.calibration import calibration, format_calibration
from icrm_sgl.evaluation.correlation import kendall, pearson, spearman
from icrm_sgl.evaluation.rewardbench import EXAMPLE_COUNTS, SUBSET_MAPPING, SUBSETS
from icrm_sgl.judges import BUILTIN_NAMES, Judge, default_judge
from icrm_sgl.judging import pair_orders
from icrm_sgl.judging.expectation import checked_distribution
from icrm_sgl.judging.pair_orders import View, disagree

#: Order name -> sign that turns the presented A-vs-B margin into "chosen is better".
ORDER_SIGN = {"chosen_first": 1, "rejected_first": -1}
#: Order name -> the side (A or B) the chosen reply was shown as.
ORDER_TRUTH = {"chosen_first": "A", "rejected_first": "B"}

#: How a pair's verdicts become one margin: from the greedy labels, or from the
#: probability of every label (expected margins; falls back to the label without them).
RECONCILE = ("choice", "probability")

DECIMALS = 4
#: The correlations reported between a reward and human scores.
CORRELATIONS = ("pearson", "spearman", "kendall")
#: A pair labelled a tie counts as right when the reconciled margin (on the ±2 scale)
#: is nearer to A=B than to A+ or B+.
TIE_TOLERANCE = 0.5


@dataclass(frozen=True)
class _Parsed:
    """A checked record: its subset, its valid verdicts seen from the chosen reply (one per
    order, or one for both individual scores), and how many lacked probabilities."""

    subset: str
    sides: list[View]
    without_probabilities: int
    verdicts: int
    tie_label: bool = False
    group: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What one judged pair contributes to the counts under one reconciliation."""

    subset: str
    margin: float | None
    flip: bool | None  # None unless at least two orders gave a valid verdict
    same_position: bool | None = None  # both orders favoured the same position (A or B)
    p_chosen: float | None = None
    tie_label: bool = False  # the annotators judged the replies equal
    group: str | None = None  # best-of-N: the prompt this pair belongs to
    tolerance: float = TIE_TOLERANCE  # how near 0 a tie label's margin must be

    @property
    def correct(self) -> bool:
        """The chosen reply wins; for a tie label, the margin is within half a step of 0."""
        if self.margin is None:
            return False
        return abs(self.margin) <= self.tolerance if self.tie_label else self.margin > 0

    def credit(self, tie_credit: float) -> float:
        """1 when correct; ``tie_credit`` for equal rewards on a pair not labelled a tie."""
        if self.correct:
            return 1.0
        return tie_credit if self.margin == 0 and not self.tie_label else 0.0


# ----------------------------------------------------------------------------- the judge


def record_judge(mode: str, judge: Judge | None = None) -> Judge:
    """The judge whose records these are: the one given (its name must be the records'
    mode), else the built-in judge the mode names."""
    if judge is not None:
        if judge.name != mode:
            raise InputError(f"result records are judge {mode!r}'s, not {judge.name!r}'s")
        return judge
    if mode not in BUILTIN_NAMES:
        raise InputError(f"result records of judge {mode!r}: pass that judge to score them")
    return default_judge(mode)


def _numbers(probabilities: Any, values: Mapping[str, float], what: str) -> dict[float, float]:
    """A checked distribution over a field's values, as numbers (equal numbers merged)."""
    texts = (
        {str(k): v for k, v in probabilities.items()}
        if isinstance(probabilities, Mapping)
        else probabilities
    )
    out: dict[float, float] = defaultdict(float)
    for text, p in checked_distribution(texts, tuple(values), what).items():
        out[values[text]] += p
    return dict(out)


def _view(dist: Mapping[float, float], greedy: float) -> View:
    """A view from a distribution over chosen-side margins and the greedy margin."""
    return View(
        greedy,
        sum(m * p for m, p in dist.items()),
        sum(p * (1.0 if m > 0 else 0.5 if m == 0 else 0.0) for m, p in dist.items()),
    )


# ----------------------------------------------------------------------------- pairwise


def judgement_view(
    judgement: dict[str, Any], judge: Judge, where: str = "judgement"
) -> View | None:
    """One order's verdict seen from the chosen reply; None if that order failed."""
    if not isinstance(judgement, dict):
        raise InputError(f"{where}: expected an object, got {type(judgement).__name__}")
    order = judgement.get("order")
    if order not in ORDER_SIGN:
        raise InputError(f"{where}: order must be one of {', '.join(ORDER_SIGN)}, got {order!r}")
    choice = judgement.get("choice")
    if judgement.get("error") is not None or choice is None:
        return None
    margins = {c: ORDER_SIGN[order] * judge.margin(c) for c in judge.scale}
    if choice not in margins:
        raise InputError(f"{where}: choice must be one of {', '.join(margins)}, got {choice!r}")
    probabilities = judgement.get("probabilities")
    if probabilities is None:
        return _view({margins[choice]: 1.0}, margins[choice])
    try:
        return _view(_numbers(probabilities, margins, "choice"), margins[choice])
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def _views(judgements: Any, judge: Judge, where: str) -> list[View]:
    if not isinstance(judgements, list) or not judgements:
        raise InputError(f"{where}: judgements must be a non-empty list")
    views = (judgement_view(j, judge, f"{where}: judgement {i}") for i, j in enumerate(judgements))
    return [v for v in views if v is not None]


def reconcile(judgements: list[dict], judge: Judge | None = None) -> float | None:
    """Mean chosen-side margin over the valid orders (of ``judge``, by default the
    built-in pairwise one); None when every order failed."""
    judge = judge or default_judge("pairwise")
    result = pair_orders.reconcile(_views(judgements, judge, "judgements"))
    return result.greedy_margin if result is not None else None


# ----------------------------------------------------------------------------- records


def _where(record: dict[str, Any], index: int) -> str:
    rid = record.get("id")
    return f"result record {index}" + (f" (id {rid!r})" if rid is not None else "")


def _number(value: Any, where: str) -> float | None:
    """A reply's reward or score: a finite number, or None for a failed reply."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where}: score must be a finite number or null, got {value!r}")
    return float(value)


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


def _parse_pairwise(
    record: dict[str, Any], judge: Judge, where: str
) -> tuple[list[View], int, int]:
    judgements = record.get("judgements")
    sides = _views(judgements, judge, where)
    valid = [j for j in judgements or [] if j.get("error") is None and j.get("choice") is not None]
    without = sum(j.get("probabilities") is None for j in valid)
    return sides, without, len(sides)


def reward_values(judge: Judge) -> dict[str, float] | None:
    """The number of each value of a one-reply judge's reward field, by its text; None
    when the reward is not one field's value."""
    if judge.reward is None:
        return None
    spec = judge.field_named(judge.reward)
    return {text: judge.number(spec, text) for text in spec.texts}


def _side(
    record: dict[str, Any], side: str, values: Mapping[str, float] | None, where: str
) -> tuple[float, float, dict[float, float]]:
    """One reply's (greedy value, reward, distribution over values): the reward is the
    stored one, else the distribution's mean; without probabilities, the greedy value
    is certain."""
    greedy = _number(record["scores"][side], f"{where}: {side}")
    assert greedy is not None  # the caller skips failed replies
    probs = (record.get("probabilities") or {}).get(side)
    dist = {greedy: 1.0}
    if probs is not None and values is not None:
        try:
            dist = _numbers(probs, values, "score")
        except InputError as exc:
            raise InputError(f"{where}: {side}: {exc}") from None
    stored = (record.get("rewards") or {}).get(side)
    reward = _number(stored, f"{where}: {side} reward")
    return greedy, sum(v * p for v, p in dist.items()) if reward is None else reward, dist


def _parse_individual(
    record: dict[str, Any], judge: Judge, where: str
) -> tuple[list[View], int, int]:
    scores = record.get("scores")
    if not isinstance(scores, dict):
        raise InputError(f"{where}: a one-reply judge's record needs a 'scores' object")
    if _number(scores.get("chosen"), f"{where}: chosen") is None or (
        _number(scores.get("rejected"), f"{where}: rejected") is None
    ):
        return [], 0, 0
    probs = record.get("probabilities") or {}
    if not isinstance(probs, dict):
        raise InputError(f"{where}: 'probabilities' must be an object")
    values = reward_values(judge)
    allowed = set(values.values()) if values else None
    for side in ("chosen", "rejected"):
        if allowed is not None and scores[side] not in allowed:
            shown = ", ".join(map(_number_text, sorted(allowed)))
            raise InputError(f"{where}: {side}: score must be one of {shown}, got {scores[side]!r}")
    g_c, r_c, dist_c = _side(record, "chosen", values, where)
    g_r, r_r, dist_r = _side(record, "rejected", values, where)
    if values is None:  # a combined reward: no one field's label, the reward decides
        (g_c, dist_c), (g_r, dist_r) = (r_c, {r_c: 1.0}), (r_r, {r_r: 1.0})
    p_chosen = sum(
        p * q * (1.0 if s > t else 0.5 if s == t else 0.0)
        for s, p in dist_c.items()
        for t, q in dist_r.items()
    )
    without = sum(probs.get(k) is None for k in ("chosen", "rejected"))
    return [View(g_c - g_r, r_c - r_r, p_chosen)], without, 2


def _parse(record: Any, index: int, judge: Judge) -> _Parsed:
    if not isinstance(record, dict):
        raise InputError(f"result record {index}: expected an object")
    where = _where(record, index)
    subset = record.get("subset")
    if not isinstance(subset, str) or not subset:
        raise InputError(f"{where}: missing or empty 'subset'")
    parse = _parse_pairwise if judge.pair is not None else _parse_individual
    sides, without, verdicts = parse(record, judge, where)
    label = record.get("label")
    if label not in (None, "tie"):
        raise InputError(f"{where}: label must be 'tie' or absent, got {label!r}")
    group = record.get("group")
    if group is not None and not isinstance(group, str):
        raise InputError(f"{where}: group must be text, got {group!r}")
    parsed = _Parsed(subset, sides, without, verdicts, label == "tie", group)
    _check_stored(record, _reconciled(parsed, "choice").margin, where)
    return parsed


def _reconciled(parsed: _Parsed, kind: str) -> Outcome:
    """The pair's outcome when its verdicts are reconciled by label or by probability."""
    result = pair_orders.reconcile(parsed.sides)
    if result is None:
        return Outcome(parsed.subset, None, None, tie_label=parsed.tie_label, group=parsed.group)
    by_label = kind == "choice"
    margins = [side.greedy if by_label else side.expected for side in parsed.sides]
    two = len(margins) == 2
    return Outcome(
        subset=parsed.subset,
        margin=result.greedy_margin if by_label else result.expected_margin,
        flip=result.flipped if by_label else disagree(margins),
        # chosen-side margins of opposite signs: the same position won both times
        same_position=(margins[0] * margins[1] < 0) if two else None,
        p_chosen=None if by_label else result.p_a_better,
        tie_label=parsed.tie_label,
        group=parsed.group,
    )


def _mode(records: list[dict]) -> str:
    """The one judge (by name) of the run; a report mixing judges would mean nothing."""
    if not records:
        raise InputError("no judged records to score")
    modes = {r.get("mode") if isinstance(r, dict) else None for r in records}
    if len(modes) > 1 or not all(isinstance(m, str) and m for m in modes):
        shown = ", ".join(sorted(map(repr, modes)))
        raise InputError(f"result records must share one mode (their judge's name); found {shown}")
    return str(modes.pop())


# ----------------------------------------------------------------------------- counting


def _rate(count: float, total: int) -> float | None:
    return round(count / total, DECIMALS) if total else None


def plain_number(number: float) -> float | int:
    """A whole number as an int (as JSON shows counts), else rounded."""
    return int(number) if float(number).is_integer() else round(number, DECIMALS)


def _summary(outcomes: list[Outcome], tie_credit: float = 0.0) -> dict[str, Any]:
    """Counts and rates over a group of pairs (a subset, or the whole run); a tie on a
    pair not labelled a tie earns ``tie_credit``."""
    n = len(outcomes)
    correct = plain_number(sum(o.credit(tie_credit) for o in outcomes))
    ties = sum(o.margin == 0 for o in outcomes)
    failures = sum(o.margin is None for o in outcomes)
    flip_n = sum(o.flip is not None for o in outcomes)
    flips = sum(o.flip is True for o in outcomes)
    biased = sum(o.same_position is True for o in outcomes)
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
        "position_bias": biased,
        "position_bias_rate": _rate(biased, flip_n),
        "tie_labels": sum(o.tie_label for o in outcomes),
    }


def _choice_distribution(records: list[dict], judge: Judge) -> dict[str, dict[str, int]]:
    """How often each choice was given, split by which side truly was better."""
    counts: dict[str, Counter[str]] = {"A": Counter(), "B": Counter()}
    for record in records:
        if record.get("label") == "tie":
            continue
        for judgement in record["judgements"]:
            if judgement.get("error") is None and judgement.get("choice") is not None:
                counts[ORDER_TRUTH[judgement["order"]]][judgement["choice"]] += 1
    return {truth: {c: counts[truth][c] for c in judge.scale} for truth in ("A", "B")}


def _number_text(number: float) -> str:
    return str(plain_number(number))


def _score_histogram(records: list[dict], judge: Judge) -> dict[str, dict[str, int]]:
    """How often each value was given to chosen and to rejected replies (every value of
    the reward field, else each value given)."""
    counts: dict[str, Counter[float]] = {"chosen": Counter(), "rejected": Counter()}
    for record in records:
        for side in counts:
            score = record["scores"].get(side)
            if score is not None:
                counts[side][score] += 1
    values = reward_values(judge)
    keys = set(values.values()) if values else {v for c in counts.values() for v in c}
    return {side: {_number_text(v): counts[side][v] for v in sorted(keys)} for side in counts}


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


def accuracy_report(
    outcomes: list[Outcome], rewardbench: bool | None, tie_credit: float = 0.0
) -> dict[str, Any]:
    """Overall and per-subset counts (and RewardBench sections) of one reconciliation."""
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[outcome.subset].append(outcome)
    per_subset = {s: _summary(groups[s], tie_credit) for s in sorted(groups)}
    report: dict[str, Any] = {"overall": _summary(outcomes, tie_credit), "per_subset": per_subset}
    if _wants_rewardbench(rewardbench, set(groups)):
        exact = {s: per_subset[s]["correct"] / per_subset[s]["n"] for s in per_subset}
        report["rewardbench"] = rewardbench_scores(exact)
    if any(o.group is not None for o in outcomes):
        report["best_of_n"] = best_of_n(outcomes)
    return report


def best_of_n(outcomes: list[Outcome]) -> dict[str, Any]:
    """Best-of-N prompts: right when the chosen reply beat every rejected one (every pair
    of the prompt right), per subset and overall."""
    prompts: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.group is not None:
            prompts[outcome.group].append(outcome)
    by_subset: dict[str, list[bool]] = defaultdict(list)
    for pairs in prompts.values():
        by_subset[pairs[0].subset].append(all(o.correct for o in pairs))

    def summary(flags: list[bool]) -> dict[str, Any]:
        return {"n": len(flags), "correct": sum(flags), "accuracy": _rate(sum(flags), len(flags))}

    every = [flag for flags in by_subset.values() for flag in flags]
    return {
        "overall": summary(every),
        "per_subset": {s: summary(by_subset[s]) for s in sorted(by_subset)},
    }


def judge_entry(judge: Judge) -> dict[str, str]:
    """How metrics.json names the judge: its name and its definition's fingerprint."""
    return {"name": judge.name, "fingerprint": judge.fingerprint()}


def compute_metrics(
    records: list[dict],
    rewardbench: bool | None = None,
    reconcile: str | None = None,
    judge: Judge | None = None,
    tie_credit: float = 0.0,
) -> dict:
    """Every number the evaluation report shows, as a JSON-serialisable dict; a pair id
    that appears more than once counts once. ``judge`` reads the records (by default the
    built-in judge their mode names); a tie on a pair not labelled a tie counts
    ``tie_credit`` (0: wrong, 0.5: half right). Replies with human scores get
    ``scored_metrics``.

    Both reconciliations are computed; ``reconcile`` picks the headline one (``overall``,
    ``per_subset``, ``rewardbench``): by default ``probability`` when every verdict came
    with probabilities, else ``choice``.
    """
    if reconcile is not None and reconcile not in RECONCILE:
        raise InputError(f"reconcile must be one of {', '.join(RECONCILE)}, got {reconcile!r}")
    records = unique_records(records)
    judge = record_judge(_mode(records), judge)
    if isinstance(records[0], dict) and "human_score" in records[0]:
        return scored_metrics(records, judge)
    parsed = [_parse(r, i, judge) for i, r in enumerate(records)]
    outcomes = {kind: [_reconciled(p, kind) for p in parsed] for kind in RECONCILE}
    reports = {kind: accuracy_report(outcomes[kind], rewardbench, tie_credit) for kind in RECONCILE}
    verdicts = sum(p.verdicts for p in parsed)
    without = sum(p.without_probabilities for p in parsed)
    headline = reconcile or ("probability" if verdicts and not without else "choice")
    probabilities = [
        o.p_chosen for o in outcomes["probability"] if o.p_chosen is not None and not o.tie_label
    ]
    metrics: dict[str, Any] = {
        "kind": "accuracy",
        "mode": judge.name,
        "judge": judge_entry(judge),
        "n": len(records),
        "reconcile": headline,
        "tie_credit": tie_credit,
        **reports[headline],
        "reconciliations": reports,
        "verdicts": verdicts,
        "verdicts_without_probabilities": without,
        "calibration": calibration(probabilities),
    }
    if judge.pair is not None:
        metrics["choice_distribution"] = _choice_distribution(records, judge)
    else:
        metrics["score_histogram"] = _score_histogram(records, judge)
    return metrics


# ----------------------------------------------------------------------------- human scores


@dataclass(frozen=True)
class _Scored:
    """A reply a person scored: its subset, that score, and the judge's reward (None
    when judging it failed)."""

    subset: str
    human: float
    reward: float | None
    with_probabilities: bool


def _parse_scored(record: Any, index: int) -> _Scored:
    if not isinstance(record, dict):
        raise InputError(f"result record {index}: expected an object")
    where = _where(record, index)
    subset = record.get("subset")
    if not isinstance(subset, str) or not subset:
        raise InputError(f"{where}: missing or empty 'subset'")
    human = _number(record.get("human_score"), f"{where}: human_score")
    if human is None:
        raise InputError(f"{where}: human_score must be a number")
    reward = _number(record.get("reward"), f"{where}: reward")
    if "failed" in record and bool(record["failed"]) != (reward is None):
        raise InputError(f"{where}: 'failed' is {record['failed']!r} but reward is {reward!r}")
    return _Scored(subset, human, reward, record.get("probabilities") is not None)


def _correlations(replies: Sequence[_Scored]) -> dict[str, Any]:
    """Pearson, Spearman and Kendall (tau-b) between reward and human score, over the
    replies judged; failures are counted, not correlated."""
    judged = [r for r in replies if r.reward is not None]
    rewards = [r.reward for r in judged if r.reward is not None]
    humans = [r.human for r in judged]
    failures = len(replies) - len(judged)

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, DECIMALS)

    return {
        "n": len(replies),
        "failures": failures,
        "failure_rate": _rate(failures, len(replies)),
        "pearson": rounded(pearson(rewards, humans)),
        "spearman": rounded(spearman(rewards, humans)),
        "kendall": rounded(kendall(rewards, humans)),
    }


def scored_metrics(records: list[dict], judge: Judge) -> dict[str, Any]:
    """The correlations between a one-reply judge's reward and human scores, per subset
    and overall."""
    if judge.pair is not None:
        raise InputError(f"judge {judge.name} compares two replies: it gives no reward per reply")
    replies = [_parse_scored(r, i) for i, r in enumerate(records)]
    groups: dict[str, list[_Scored]] = defaultdict(list)
    for reply in replies:
        groups[reply.subset].append(reply)
    judged = [r for r in replies if r.reward is not None]
    return {
        "kind": "correlation",
        "mode": judge.name,
        "judge": judge_entry(judge),
        "n": len(replies),
        "overall": _correlations(replies),
        "per_subset": {s: _correlations(groups[s]) for s in sorted(groups)},
        "verdicts": len(judged),
        "verdicts_without_probabilities": sum(not r.with_probabilities for r in judged),
    }


# ----------------------------------------------------------------------------- table


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


#: (summary key, column title) of each reconciliation's columns in the table.
_COLUMNS = (
    ("accuracy", "accuracy"),
    ("tie_rate", "ties"),
    ("flip_rate", "flips"),
    ("position_bias_rate", "pos.bias"),
)


def _subset_rows(metrics: dict) -> list[str]:
    """Per subset: n, failures, two-order pairs, then each reconciliation's rates side by side."""
    kinds = list(metrics["reconciliations"])
    reports = metrics["reconciliations"]
    names = [*reports[kinds[0]]["per_subset"], "overall"]
    width = max(len("subset"), *(len(name) for name in names))
    block = 2 + sum(max(len(title), 6) + 2 for _, title in _COLUMNS) - 2
    titles = "".join(
        f"  {kind + (' *' if kind == metrics['reconcile'] else ''):<{block - 2}}" for kind in kinds
    )
    header = f"{'subset':<{width}}  {'n':>6}  {'failures':>8}  {'2 orders':>8}" + "".join(
        "".join(f"  {title:>{max(len(title), 6)}}" for _, title in _COLUMNS) for _ in kinds
    )
    lines = [" " * (width + 28) + titles, header, "-" * len(header)]
    for name in names:
        rows = [
            reports[k]["overall"] if name == "overall" else reports[k]["per_subset"][name]
            for k in kinds
        ]
        if name == "overall":
            lines.append("-" * len(header))
        line = f"{name:<{width}}  {rows[0]['n']:>6}  {_pct(rows[0]['failure_rate']):>8}"
        line += f"  {rows[0]['flip_n']:>8}"
        for row in rows:
            line += "".join(f"  {_pct(row[key]):>{max(len(title), 6)}}" for key, title in _COLUMNS)
        lines.append(line)
    return lines


def _distribution_rows(metrics: dict) -> list[str]:
    if "choice_distribution" in metrics:
        dist, label = metrics["choice_distribution"], "better side"
        names = {"A": "truth A", "B": "truth B"}
    elif "score_histogram" in metrics:
        dist, label = metrics["score_histogram"], "score"
        names = {"chosen": "chosen", "rejected": "rejected"}
    else:
        return []
    keys = list(next(iter(dist.values())))
    width = max(6, *(len(k) + 1 for k in keys))
    lines = [f"{label:<11}" + "".join(f"{k:>{width}}" for k in keys)]
    for side, counts in dist.items():
        lines.append(f"{names[side]:<11}" + "".join(f"{counts[k]:>{width}}" for k in keys))
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


def _best_of_n_rows(metrics: dict) -> list[str]:
    reports = metrics["reconciliations"]
    if not any("best_of_n" in r for r in reports.values()):
        return []
    first = next(iter(reports.values()))["best_of_n"]
    lines = ["best-of-N prompts (right when the chosen reply beats every rejected one)"]
    names = [*first["per_subset"], "overall"]
    width = max(len("subset"), *(len(n) for n in names))
    lines.append(f"  {'subset':<{width}}  {'prompts':>7}" + "".join(f"  {k:>11}" for k in reports))
    for name in names:
        cells = []
        for report in reports.values():
            bon = report["best_of_n"]
            cells.append(bon["overall"] if name == "overall" else bon["per_subset"][name])
        line = f"  {name:<{width}}  {cells[0]['n']:>7}"
        lines.append(line + "".join(f"  {_pct(c['accuracy']):>11}" for c in cells))
    return lines


def _probability_note(metrics: dict) -> list[str]:
    without = metrics.get("verdicts_without_probabilities")
    if not without:
        return []
    return [
        f"{without} of {metrics['verdicts']} verdicts came without probabilities: the "
        "probability reconciliation scores them by their greedy label"
    ]


def _tie_note(metrics: dict) -> list[str]:
    if not metrics.get("tie_credit"):
        return []
    return [f"a tie (equal rewards) on a pair not labelled a tie counts {metrics['tie_credit']}"]


def _correlation_rows(metrics: dict) -> list[str]:
    """Per subset: replies, failures, and the three correlations with the human scores."""
    rows = [*metrics["per_subset"].items(), ("overall", metrics["overall"])]
    width = max(len("subset"), *(len(name) for name, _ in rows))
    header = f"{'subset':<{width}}  {'n':>6}  {'failures':>8}" + "".join(
        f"  {name:>8}" for name in CORRELATIONS
    )
    lines = [header, "-" * len(header)]
    for name, row in rows:
        if name == "overall":
            lines.append("-" * len(header))
        cells = "".join(f"  {'-' if row[k] is None else f'{row[k]:.3f}':>8}" for k in CORRELATIONS)
        lines.append(f"{name:<{width}}  {row['n']:>6}  {_pct(row['failure_rate']):>8}{cells}")
    return lines


def format_table(metrics: dict) -> str:
    """A fixed-width text report of the metrics, for the terminal and report files."""
    if metrics.get("kind") == "correlation":
        title = f"{metrics['mode']} judging, {metrics['n']} replies with human scores"
        blocks = [[title], _correlation_rows(metrics), _probability_note(metrics)]
        return "\n\n".join("\n".join(block) for block in blocks if block) + "\n"
    blocks = [
        [f"{metrics['mode']} judging, {metrics['n']} pairs"],
        _tie_note(metrics),
        _subset_rows(metrics),
        _distribution_rows(metrics),
        _rewardbench_rows(metrics),
        _best_of_n_rows(metrics),
        format_calibration(metrics.get("calibration")),
        _probability_note(metrics),
    ]
    return "\n\n".join("\n".join(block) for block in blocks if block) + "\n"
