"""One example's panel result from its members' results: each member's reward mapped to
0-1, then a weighted mean or a weighted vote, and how far the members agree.

A member of one reply gives its judge's reward (``Judge.reward_value``); a member of two
gives its reconciled expected margin (``pair_orders``), -M..M, where 0 is a tie. Either is
mapped to 0-1 from its judge's range (``spec.reward_range``), so 0.5 is a tie between two
replies. ``vote`` counts each member's decision, weighted: for two replies the sign of its
greedy margin (A, B or tie), for one its reward field's value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from icrm_sgl.judging.expectation import DECIMALS
from icrm_sgl.judging.pair_judging import SUMMED, PairJudgement
from icrm_sgl.panel.spec import Member, PanelSpec, reward_range
from icrm_sgl.plumbing.judgement import Judgement

#: Two-reply decisions, from the first reply's side.
FIRST, SECOND, TIE = "A", "B", "tie"


@dataclass(frozen=True)
class Outcome:
    """One member's result for one example: its record entry and, when it judged, the
    0-1 reward and decision the panel combines."""

    member: Member
    entry: dict[str, Any]
    normalized: float | None = None
    decision: str | None = None

    @property
    def failed(self) -> bool:
        return self.normalized is None


def _entry(member: Member, model: str | None) -> dict[str, Any]:
    judge = member.judge
    return {
        "member": member.number,
        "judge": judge.name,
        "fingerprint": judge.fingerprint()[:16],
        "engine": member.engine.name,
        "model": model,
        "weight": member.weight,
    }


def _scaled(member: Member, value: float) -> float:
    low, high = reward_range(member.judge)
    return round((value - low) / (high - low), DECIMALS)


def one_reply(member: Member, model: str | None, result: Judgement) -> Outcome:
    """A member's outcome from its ``Judgement`` of one reply."""
    entry = _entry(member, model)
    if result.verdict is None:
        return Outcome(member, {**entry, "error": result.error, "meta": result.meta})
    judge = member.judge
    reward = judge.reward_value(result.verdict, result.meta)
    probabilities = result.meta.get("probabilities")
    decision = None
    if judge.reward is not None:
        value = result.verdict[judge.field_named(judge.reward).key]
        decision = ("true" if value else "false") if isinstance(value, bool) else str(value)
    entry.update(verdict=result.verdict, reward=reward, normalized=_scaled(member, reward))
    if probabilities is not None:
        entry["probabilities"] = probabilities
    entry["decision"], entry["meta"] = decision, result.meta
    return Outcome(member, entry, entry["normalized"], decision)


def two_replies(member: Member, model: str | None, result: PairJudgement) -> Outcome:
    """A member's outcome from its reconciled ``PairJudgement`` (one order or both)."""
    entry = _entry(member, model)
    rec = result.reconciliation
    if rec is None:
        return Outcome(member, {**entry, "error": result.error, "meta": result.meta})
    orders = result.meta.get("orders", {})
    if len(result.verdicts) == 1:
        (order,) = result.verdicts
        entry["verdict"] = result.verdicts[order]
        probabilities = orders.get(order, {}).get("probabilities")
    else:
        entry["verdicts"] = result.verdicts
        probabilities = {o: m["probabilities"] for o, m in orders.items() if "probabilities" in m}
        entry["flipped"] = rec.flipped
    entry.update(reward=round(rec.expected_margin, DECIMALS), p_a_better=round(rec.p_a_better, 6))
    entry["normalized"] = _scaled(member, rec.expected_margin)
    if probabilities:
        entry["probabilities"] = probabilities
    margin = rec.greedy_margin
    decision = FIRST if margin > 0 else SECOND if margin < 0 else TIE
    entry["decision"], entry["meta"] = decision, result.meta
    return Outcome(member, entry, entry["normalized"], decision)


def combine(
    spec: PanelSpec, example_id: str, outcomes: Sequence[Outcome], require_all: bool
) -> Judgement:
    """The panel's ``Judgement``: its verdict (``reward``, and ``decision`` where the panel
    decides) and meta (members, reward, agreement, members that failed); an error when
    every member failed, or any did with ``require_all``."""
    failed = [o for o in outcomes if o.failed]
    judged = [o for o in outcomes if not o.failed]
    meta: dict[str, Any] = {"panel": spec.name, "combine": spec.combine}
    meta["members"] = [o.entry for o in outcomes]
    meta.update(_totals(outcomes))
    if failed:
        meta["members_failed"] = [o.member.number for o in failed]
    if not judged or (failed and require_all):
        errors = "; ".join(f"{o.member.label}: {o.entry['error']}" for o in failed)
        every = "every member failed" if not judged else "a member failed (require_all)"
        return Judgement(example_id, error=f"{every}: {errors}", meta=meta)
    if spec.combine == "vote":
        verdict, agreement = _vote(spec, judged)
    else:
        verdict, agreement = _mean(spec, judged)
    meta.update(reward=verdict["reward"], agreement=agreement)
    return Judgement(example_id, verdict=verdict, meta=meta)


def _mean(spec: PanelSpec, judged: Sequence[Outcome]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The weighted mean of the 0-1 rewards; for two replies the side it leans to."""
    total = sum(o.member.weight for o in judged)
    reward = round(sum(o.member.weight * (o.normalized or 0.0) for o in judged) / total, DECIMALS)
    values = [o.normalized or 0.0 for o in judged]
    verdict: dict[str, Any] = {"reward": reward}
    if spec.pairs:
        verdict = {
            "decision": FIRST if reward > 0.5 else SECOND if reward < 0.5 else TIE,
            **verdict,
        }
    return verdict, {"spread": round(max(values) - min(values), DECIMALS)}


def _vote(spec: PanelSpec, judged: Sequence[Outcome]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The weighted majority decision. Ties break to ``tie`` between two replies, and to
    the lowest-rewarded value for one (a split panel does not reward generously). The
    reward: for two replies the weight for A (ties counting half) over all, for one the
    0-1 reward of the decided value."""
    weights: dict[str, float] = defaultdict(float)
    for outcome in judged:
        weights[str(outcome.decision)] += outcome.member.weight
    top = max(weights.values())
    leaders = sorted(d for d, w in weights.items() if w == top)
    if spec.pairs:
        decision = leaders[0] if len(leaders) == 1 else TIE
        share = (weights[FIRST] + weights[TIE] / 2) / sum(weights.values())
        reward = round(share, DECIMALS)
    else:
        first = judged[0].member
        key = str(first.judge.reward)
        spec_field = first.judge.field_named(key)
        decision = min(leaders, key=lambda text: first.judge.number(spec_field, text))
        reward = _scaled(first, first.judge.number(spec_field, decision))
    agreeing = sum(o.decision == decision for o in judged)
    agreement = {
        "unanimous": len(weights) == 1,
        "with_panel": round(agreeing / len(judged), DECIMALS),
    }
    return {"decision": decision, "reward": reward}, agreement


def _totals(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The members' countable meta (tokens, retries, seconds) added up, as a pair's are."""
    metas = [o.entry.get("meta", {}) for o in outcomes]
    totals = {k: sum(m.get(k) or 0 for m in metas) for k in SUMMED if any(k in m for m in metas)}
    if "seconds" in totals:
        totals["seconds"] = round(totals["seconds"], 3)
    return totals
