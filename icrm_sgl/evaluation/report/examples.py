"""One result record as the page's row: its decision in each order or side, whether it
flipped, its confidence and correctness, and every verdict with the fields it holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.loaders import LabelledPair, ScoredReply
from icrm_sgl.evaluation.metrics import TIE_TOLERANCE, judgement_view, record_judge
from icrm_sgl.evaluation.panel import PANEL_TIE_TOLERANCE
from icrm_sgl.evaluation.report.model import Example, Verdict
from icrm_sgl.judging import pair_orders


def _text(value: Any) -> str:
    """A decision as the table shows it."""
    return "-" if value is None else str(value)


def _distribution(value: Any) -> dict[str, float] | None:
    """A verdict's probabilities as label -> probability (a list of pairs too)."""
    try:
        found = dict(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    if not found or not all(isinstance(p, int | float) for p in found.values()):
        return None
    return {str(k): float(p) for k, p in found.items()}


def _confidence(distributions: list[dict[str, float] | None]) -> float | None:
    """The mean probability of the top label over the verdicts that gave probabilities."""
    tops = [max(d.values()) for d in distributions if d]
    return round(sum(tops) / len(tops), 4) if tops else None


def _flipped_orders(record: Mapping[str, Any]) -> bool | None:
    """Whether the orders' greedy winners differ; None for one order or a judge whose
    definition the folder does not hold (a rubric's records name it, not define it)."""
    try:
        judge = record_judge(str(record.get("mode")))
        views = [judgement_view(j, judge) for j in record["judgements"]]
    except InputError:
        return None
    result = pair_orders.reconcile([v for v in views if v is not None])
    return result.flipped if result is not None else None


def _correct(record: Mapping[str, Any], tolerance: float) -> bool | None:
    """The stored (greedy) margin's outcome: the chosen reply wins, or a tie label's
    margin is within ``tolerance`` of 0."""
    margin = record.get("margin")
    if not isinstance(margin, int | float):
        return False if record.get("failed") else None
    return abs(margin) <= tolerance if record.get("label") == "tie" else margin > 0


def _rest(entry: Mapping[str, Any], *drop: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in drop}


@cache
def _judge_keys(name: str) -> tuple[str, ...]:
    """The field order of the built-in judge ``name``; none for a custom judge, whose
    stored verdict keeps its program's order."""
    try:
        return tuple(record_judge(name).keys)
    except InputError:
        return ()


def _fields(verdict: Any, keys: Sequence[str]) -> list[tuple[str, Any]]:
    """A stored verdict's fields, in the judge's order (``keys``) then as stored; none
    for a failed verdict or a record written before eval kept whole verdicts."""
    if not isinstance(verdict, Mapping):
        return []
    order = [k for k in keys if k in verdict] + [k for k in verdict if k not in keys]
    return [(str(k), verdict[k]) for k in order]


def _pairwise(record: Mapping[str, Any]) -> tuple[dict[str, str], list[Verdict], bool | None]:
    """A two-reply judge's record: each order's choice, whole verdict and probabilities."""
    keys = _judge_keys(str(record.get("mode")))
    verdicts, decisions = [], {}
    for judgement in record.get("judgements") or []:
        order = str(judgement.get("order"))
        decisions[order] = _text(judgement.get("choice"))
        verdicts.append(
            Verdict(
                title=order,
                fields=_fields(judgement.get("verdict"), keys),
                record=_rest(judgement, "order", "probabilities", "verdict"),
                probabilities=_distribution(judgement.get("probabilities")),
            )
        )
    return decisions, verdicts, _flipped_orders(record)


def _sides(record: Mapping[str, Any]) -> tuple[dict[str, str], list[Verdict], bool | None]:
    """A one-reply judge's record: each reply's verdict, score, reward, error and
    probabilities."""
    keys = _judge_keys(str(record.get("mode")))
    scores = record.get("scores") or {"reply": record.get("score")}
    probabilities = record.get("probabilities") or {}
    stored = record.get("verdicts") or {}
    if "scores" not in record:
        probabilities, stored = {"reply": probabilities}, {"reply": record.get("verdict")}
    verdicts = []
    for side, score in scores.items():
        fields = {"score": score}
        for key in ("rewards", "errors"):
            if isinstance(record.get(key), Mapping) and side in record[key]:
                fields[key[:-1]] = record[key][side]
        for key in ("reward", "error", "human_score"):
            if "scores" not in record and key in record:
                fields[key] = record[key]
        verdicts.append(
            Verdict(
                title=side,
                fields=_fields(stored.get(side), keys),
                record=fields,
                probabilities=_distribution(probabilities.get(side)),
            )
        )
    return {side: _text(score) for side, score in scores.items()}, verdicts, None


def _member(k: int, member: Mapping[str, Any]) -> list[Verdict]:
    """A panel member's columns: one per verdict it stored (an order or a reply), else
    one of its record entry alone."""
    title = f"member {member.get('member', k + 1)}: {member.get('judge', '')}".strip(": ")
    rest = _rest(member, "member", "verdicts")
    stored = member.get("verdicts")
    if not isinstance(stored, Mapping) or not stored:
        return [Verdict(title=title, fields=[], record=rest)]
    keys = _judge_keys(str(member.get("judge")))
    return [
        Verdict(title=f"{title} ({where})", fields=_fields(verdict, keys), record=rest)
        for where, verdict in stored.items()
    ]


def _panel(record: Mapping[str, Any]) -> tuple[dict[str, str], list[Verdict], bool | None]:
    """A panel's record: its reward (per order or per reply) and each member's verdicts."""
    if "order" in record:
        decisions = {str(record["order"]): _text(record.get("reward"))}
    else:
        decisions = {k: _text(v) for k, v in (record.get("rewards") or {}).items()}
    verdicts = [v for k, m in enumerate(record["members"]) for v in _member(k, m)]
    flips = [m.get("flipped") for m in record["members"] if m.get("flipped") is not None]
    return decisions, verdicts, any(flips) if flips else None


def _label(record: Mapping[str, Any]) -> str:
    if "human_score" in record:
        return f"human {record['human_score']}"
    return "tie" if record.get("label") == "tie" else "chosen better"


def shown_inputs(item: LabelledPair | ScoredReply | None, limit: int) -> dict[str, Any] | None:
    """What the judge was shown: the turns before the replies, each reply and the row's
    inputs; texts longer than ``limit`` cut (the page stays small; the files keep all)."""
    if item is None:
        return None
    if isinstance(item, ScoredReply):
        shown: dict[str, Any] = {"conversation": item.conversation, "human score": item.score}
    else:
        shown = {
            "conversation": item.chosen[:-1],
            "chosen": item.chosen[-1]["content"],
            "rejected": item.rejected[-1]["content"],
        }
    return cut({**shown, **item.inputs}, limit, "the source")


def cut(value: Any, limit: int, where: str) -> Any:
    """``value`` with each text longer than ``limit`` cut, saying how much more ``where``
    holds."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… ({len(value) - limit} more characters in {where})"
    if isinstance(value, list | tuple):
        return [cut(v, limit, where) for v in value]
    if isinstance(value, dict):
        return {k: cut(v, limit, where) for k, v in value.items()}
    return value


def texts(value: Any) -> int:
    """How many texts ``value`` holds, however deep."""
    if isinstance(value, str):
        return 1
    if isinstance(value, list | tuple):
        return sum(texts(v) for v in value)
    if isinstance(value, dict):
        return sum(texts(v) for v in value.values())
    return 0


def example(record: Mapping[str, Any], inputs: dict[str, Any] | None) -> Example:
    """The page's row for one result record of any judge or panel."""
    if "members" in record:
        decisions, verdicts, flipped = _panel(record)
        tolerance = PANEL_TIE_TOLERANCE
    elif "judgements" in record:
        decisions, verdicts, flipped = _pairwise(record)
        tolerance = TIE_TOLERANCE
    else:
        decisions, verdicts, flipped = _sides(record)
        tolerance = TIE_TOLERANCE
    scored = "human_score" in record
    return Example(
        id=str(record.get("id")),
        subset=str(record.get("subset")),
        label=_label(record),
        decisions=decisions,
        flipped=flipped,
        confidence=_confidence([v.probabilities for v in verdicts]),
        correct=None if scored else _correct(record, tolerance),
        failed=bool(record.get("failed")),
        margin=record.get("margin"),
        verdicts=verdicts,
        inputs=inputs,
        record=_rest(
            record,
            "judgements",
            "members",
            "scores",
            "rewards",
            "probabilities",
            "errors",
            "verdict",
            "verdicts",
            "id",
            "subset",
        ),
    )
