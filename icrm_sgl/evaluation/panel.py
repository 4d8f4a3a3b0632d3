"""``eval --panel``: labelled pairs judged by a panel of judges, and its report.

A panel of one-reply judges judges the chosen and the rejected reply each on its own; a
panel of two-reply judges judges each pair once, every member reconciling both orders
itself (``--orders both``) or judging one (``ab``, ``alternate``). Each record keeps, for
the panel and for every member, the 0-1 reward the panel combines (``meta.reward``, and
each member's ``normalized`` in ``meta.members``) and the chosen reply's margin from it,
on one scale from -1 to 1: reward(chosen) - reward(rejected) for one reply, the reward of
the reply shown as A less that of B (2·reward - 1, sign turned when the chosen reply was
B) for two. The report scores the panel and each member from these margins with the
counting a single judge's report uses, and measures how far the members agree on each
pair's outcome (which reply wins: chosen, rejected or tie).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha
from icrm_sgl.evaluation.loaders import LabelledPair, ScoredReply
from icrm_sgl.evaluation.metrics import (
    DECIMALS,
    ORDER_SIGN,
    TIE_TOLERANCE,
    Outcome,
    accuracy_report,
    format_table,
    plain_number,
    unique_records,
)
from icrm_sgl.evaluation.runner import (
    Evaluator,
    Item,
    Job,
    call_costs,
    check_jobs,
    check_judge,
    individual_jobs,
    jobs_for,
)
from icrm_sgl.judges import Judge
from icrm_sgl.judges.supply import two_replies
from icrm_sgl.plumbing.judgement import Judgement

if TYPE_CHECKING:
    from icrm_sgl.panel.panel import Panel
    from icrm_sgl.panel.spec import PanelSpec

#: A tie label is right when the margin (-1 to 1) is within this of 0: half a step of the
#: built-in pairwise scale (A+ against A=B), as for a single judge on its ±2 scale.
PANEL_TIE_TOLERANCE = TIE_TOLERANCE / 2
#: A pair's outcome for one rater, from the sign of its margin.
CHOSEN, REJECTED, TIE = "chosen", "rejected", "tie"
#: What a member record keeps from the member's entry in the panel's meta.
MEMBER_KEYS = ("member", "judge", "fingerprint", "engine", "model", "weight")


# ----------------------------------------------------------------------------- judging


def check_panel_items(panel: PanelSpec, items: Sequence[Item], orders: str) -> None:
    """Refuse, before any engine loads, what eval cannot run a panel on: replies scored by
    people, or rows (or calls) a member cannot read, each checked as for that judge alone."""
    if any(isinstance(item, ScoredReply) for item in items):
        raise InputError(
            f"panel {panel.name}: --panel measures accuracy on labelled pairs; replies with "
            "human scores take --judge"
        )
    for judge in panel.judges:
        check_judge(judge, items)
        check_jobs(judge, jobs_for(judge, items, orders))
    panel_jobs(panel, items, orders)  # every call's example, as all the members read it


def panel_jobs(panel: PanelSpec, items: Sequence[Item], orders: str) -> list[Job]:
    """Every panel call of ``items``: each reply (one-reply members), else each pair once,
    the chosen reply shown first unless ``alternate`` swaps every other pair."""
    if not panel.pairs:
        return [job for item in items for job in individual_jobs(item)]
    jobs = []
    for i, pair in enumerate(items):
        assert isinstance(pair, LabelledPair)  # check_panel_items refused scored replies
        swap = orders == "alternate" and i % 2 == 1
        slot = "rejected_first" if swap else "chosen_first"
        chosen, rejected = pair.chosen[-1]["content"], pair.rejected[-1]["content"]
        replies = (rejected, chosen) if swap else (chosen, rejected)
        example = _pair_example(panel, pair, replies)
        jobs.append(Job(pair, slot, example))
    return jobs


def _pair_example(panel: PanelSpec, pair: LabelledPair, replies: tuple[str, str]) -> dict[str, Any]:
    """The example of two replies to the pair's prompt that every member reads."""

    def build(judge: Judge) -> dict[str, Any]:
        return two_replies(judge, pair.chosen[:-1], replies, pair.inputs, f"pair {pair.id}")

    try:
        return panel.example(build)
    except InputError as exc:
        raise InputError(f"pair {pair.id}: {exc}") from None


class PanelEvaluator(Evaluator):
    """Runs a ``Panel`` over labelled pairs, one record per pair (see the module)."""

    def __init__(self, panel: Panel, orders: str = "both", **gen: Any) -> None:
        self.panel = panel
        self.orders = orders
        self.gen = gen
        self.fingerprint = {
            "panel": panel.name,
            "combine": panel.spec.combine,
            "require_all": panel.require_all,
            "members": [
                {**model.fingerprint(**gen), "weight": member.weight}
                for member, model in zip(panel.members, panel.models, strict=True)
            ],
        }

    def jobs(self, pairs: Sequence[Item]) -> list[Job]:
        return panel_jobs(self.panel.spec, pairs, self.orders)

    def record(self, pair: Item, results: list[tuple[str, Judgement]]) -> dict[str, Any]:
        assert isinstance(pair, LabelledPair)
        return panel_record(pair, self.panel.spec, results)

    def _judge(self, jobs: list[Job]) -> Iterator[tuple[Job, Judgement]]:
        by_id = {f"{job.pair.id}#{job.slot}": job for job in jobs}
        examples = [{**job.example, "id": job_id} for job_id, job in by_id.items()]
        if self.panel.spec.pairs:
            both = self.orders == "both"
            results = self.panel.judge_pairs(examples, both_orders=both, **self.gen)
        else:
            results = self.panel.judge_batch(examples, **self.gen)
        for result in results:
            yield by_id[result.id], result


# ----------------------------------------------------------------------------- records


def _two_reply_margin(reward: float | None, order: str) -> float | None:
    """The chosen reply's margin from the 0-1 reward of the reply shown as A."""
    return None if reward is None else round(ORDER_SIGN[order] * (2 * reward - 1), DECIMALS)


def _one_reply_margin(rewards: Mapping[str, float | None]) -> float | None:
    chosen, rejected = rewards.get("chosen"), rewards.get("rejected")
    if chosen is None or rejected is None:
        return None
    return round(chosen - rejected, DECIMALS)


def _entries(result: Judgement, count: int) -> list[dict[str, Any]]:
    """The members' entries of one panel result; none (each failed with the panel's
    error) for an example no member judged."""
    members = result.meta.get("members")
    if isinstance(members, list) and len(members) == count:
        return members
    return [{"error": result.error} for _ in range(count)]


def _calls(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A member's model calls' meta: one per order it judged, else its one call's."""
    meta = entry.get("meta") or {}
    orders = meta.get("orders")
    return list(orders.values()) if isinstance(orders, dict) else [meta] if meta else []


def _order_margins(judge: Judge, entry: Mapping[str, Any]) -> list[float] | None:
    """A two-reply member's greedy margin in each of its two orders, for the reply it was
    shown first (both positive or both negative: the same position won twice); None
    unless it judged both orders."""
    verdicts = entry.get("verdicts")
    if not isinstance(verdicts, dict) or len(verdicts) != 2:
        return None
    return [plain_number(judge.margin(v[str(judge.reward)])) for v in verdicts.values()]


def _members_two(spec: PanelSpec, order: str, entries: list[dict[str, Any]]) -> list[dict]:
    """Each member's part of a two-reply record: its 0-1 reward for the reply shown as A,
    the chosen reply's margin, and whether its two orders flipped."""
    members = []
    for member, entry in zip(spec.members, entries, strict=True):
        out = {key: entry[key] for key in MEMBER_KEYS if key in entry}
        value = entry.get("normalized")
        out.update(reward=value, margin=_two_reply_margin(value, order))
        out.update(flipped=entry.get("flipped"), order_margins=_order_margins(member.judge, entry))
        out["error"] = entry.get("error")
        out["verdicts"] = entry.get("verdicts") or (
            {"A/B": entry["verdict"]} if "verdict" in entry else None
        )
        members.append(out)
    return members


def _members_one(sides: Mapping[str, list[dict[str, Any]]], count: int) -> list[dict]:
    """Each member's part of a one-reply record: its 0-1 reward of each reply and the
    chosen reply's margin."""
    members = []
    for k in range(count):
        entries = {slot: found[k] for slot, found in sides.items()}
        first = entries["chosen"]
        out = {key: first[key] for key in MEMBER_KEYS if key in first}
        rewards = {slot: entry.get("normalized") for slot, entry in entries.items()}
        out.update(rewards=rewards, margin=_one_reply_margin(rewards))
        out["errors"] = {slot: e["error"] for slot, e in entries.items() if e.get("error")}
        out["verdicts"] = {slot: e.get("verdict") for slot, e in entries.items()}
        members.append(out)
    return members


def panel_record(
    pair: LabelledPair, spec: PanelSpec, results: list[tuple[str, Judgement]]
) -> dict[str, Any]:
    """The stored record of one pair judged by the panel ``spec`` (see the module for
    the margins)."""
    count = len(spec.members)
    entries = {slot: _entries(j, count) for slot, j in results}
    record: dict[str, Any] = {"id": pair.id, "subset": pair.subset, "mode": spec.name}
    record["combine"] = spec.combine
    if spec.pairs:  # one panel result for the pair
        ((order, result),) = results
        reward = result.meta.get("reward") if result.ok else None
        margin = _two_reply_margin(reward, order)
        record.update(order=order, reward=reward, margin=margin, error=result.error)
        members = _members_two(spec, order, entries[order])
    else:
        rewards = {slot: j.meta.get("reward") if j.ok else None for slot, j in results}
        margin = _one_reply_margin(rewards)
        errors = {slot: j.error for slot, j in results if not j.ok}
        record.update(rewards=rewards, margin=margin, errors=errors)
        members = _members_one(entries, count)
    record.update(failed=margin is None, members=members)
    if pair.tie:
        record["label"] = "tie"
    if pair.group is not None:
        record["group"] = pair.group
    calls = [call for found in entries.values() for entry in found for call in _calls(entry)]
    record["meta"] = call_costs(calls)
    return record


# ----------------------------------------------------------------------------- metrics


def _margin(rater: Mapping[str, Any], order: str | None, where: str) -> float | None:
    """A rater's (the panel's or a member's) margin, recomputed from its rewards and
    checked against the stored one."""
    if order is None:
        rewards = rater.get("rewards")
        if not isinstance(rewards, dict):
            raise InputError(f"{where}: a one-reply panel's record needs a 'rewards' object")
        margin = _one_reply_margin({k: _reward(v, where) for k, v in rewards.items()})
    else:
        margin = _two_reply_margin(_reward(rater.get("reward"), where), order)
    stored = rater.get("margin")
    same = stored is None if margin is None else isinstance(stored, int | float)
    if not same or (
        margin is not None and not math.isclose(float(stored or 0), margin, abs_tol=1e-9)
    ):
        raise InputError(
            f"{where}: stored margin {stored!r} disagrees with its rewards ({margin!r})"
        )
    return margin


def _reward(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InputError(f"{where}: a reward must be a number from 0 to 1 or null, got {value!r}")
    return float(value)


def _order(record: Mapping[str, Any], where: str) -> str | None:
    if "rewards" in record:
        return None
    order = record.get("order")
    if order not in ORDER_SIGN:
        raise InputError(f"{where}: order must be one of {', '.join(ORDER_SIGN)}, got {order!r}")
    return str(order)


def _outcome(
    record: Mapping[str, Any], margin: float | None, rater: Mapping[str, Any] | None = None
) -> Outcome:
    """The pair's outcome for one rater: the panel (no orders of its own), or a member
    with its flip and its two orders' margins."""
    rater = rater or {}
    flip, orders = rater.get("flipped"), rater.get("order_margins")
    same = orders[0] * orders[1] > 0 if isinstance(orders, list) and len(orders) == 2 else None
    return Outcome(
        subset=str(record.get("subset")),
        margin=margin,
        flip=flip if isinstance(flip, bool) else None,
        same_position=same,
        tie_label=record.get("label") == "tie",
        group=record.get("group"),
        tolerance=PANEL_TIE_TOLERANCE,
    )


def outcome_label(margin: float | None) -> str | None:
    """Which reply a margin says wins; None for a failed judgement."""
    if margin is None:
        return None
    return CHOSEN if margin > 0 else REJECTED if margin < 0 else TIE


def _parsed(records: list[dict[str, Any]]) -> tuple[list[Outcome], list[list[Outcome]]]:
    """The panel's outcome of each pair, and each member's (in member order)."""
    panel: list[Outcome] = []
    members: list[list[Outcome]] = []
    for index, record in enumerate(records):
        where = f"result record {index} (id {record.get('id')!r})"
        entries = record.get("members")
        if not isinstance(entries, list) or (members and len(entries) != len(members)):
            raise InputError(f"{where}: 'members' must list every member of the panel")
        if not members:
            members = [[] for _ in entries]
        order = _order(record, where)
        panel.append(_outcome(record, _margin(record, order, where)))
        for k, entry in enumerate(entries):
            margin = _margin(entry, order, f"{where}: member {k + 1}")
            members[k].append(_outcome(record, margin, entry))
    return panel, members


def _member_info(records: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Who member ``k`` is, from the first record that names it."""
    for record in records:
        entry = record["members"][k]
        if "judge" in entry:
            return {key: entry[key] for key in MEMBER_KEYS if key in entry}
    return {"member": k + 1}


def agreement(labels: Sequence[Sequence[str | None]], numbers: Sequence[Any]) -> dict[str, Any]:
    """The members' agreement on each pair's outcome: Cohen's kappa for each two members
    (over the pairs both judged), Fleiss' kappa (over the pairs every member judged) and
    Krippendorff's alpha (every pair at least two members judged)."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, DECIMALS)

    pairs = []
    for (i, a), (j, b) in combinations(enumerate(labels), 2):
        both = sum(x is not None and y is not None for x, y in zip(a, b, strict=True))
        kappa = rounded(cohen_kappa(a, b))
        pairs.append({"members": [numbers[i], numbers[j]], "n": both, "kappa": kappa})
    columns = list(zip(*labels, strict=True))
    return {
        "outcome": f"which reply wins: {CHOSEN}, {REJECTED} or {TIE}",
        "n": len(columns),
        "cohen_kappa": pairs,
        "fleiss_kappa": rounded(fleiss_kappa(labels)),
        "fleiss_n": sum(None not in column for column in columns),
        "krippendorff_alpha": rounded(krippendorff_alpha(labels)),
        "alpha_n": sum(sum(x is not None for x in column) >= 2 for column in columns),
    }


def panel_metrics(
    records: list[dict[str, Any]], rewardbench: bool | None = None, tie_credit: float = 0.5
) -> dict[str, Any]:
    """The panel run's report as a JSON-serialisable dict: the panel's accuracy per subset
    and overall from its reward, each member's from its own, and their agreement; a pair
    id that appears more than once counts once."""
    records = unique_records(records)
    if not records:
        raise InputError("no judged records to score")
    if not all(isinstance(r, dict) for r in records):
        raise InputError("result records must be objects")
    names = {r.get("mode") for r in records}
    if len(names) > 1:
        shown = ", ".join(sorted(map(repr, names)))
        raise InputError(f"result records must share one panel (mode); found {shown}")
    panel, members = _parsed(records)
    report = accuracy_report(panel, rewardbench, tie_credit)
    numbers = []
    member_reports = []
    for k, outcomes in enumerate(members):
        info = _member_info(records, k)
        numbers.append(info.get("member", k + 1))
        member_report = accuracy_report(outcomes, rewardbench, tie_credit)
        member_reports.append({**info, **member_report})
    labels = [[outcome_label(o.margin) for o in outcomes] for outcomes in members]
    return {
        "kind": "accuracy",
        "mode": names.pop(),
        "panel": {"name": records[0].get("mode"), "combine": records[0].get("combine")},
        "n": len(records),
        "reconcile": "reward",
        "tie_credit": tie_credit,
        **report,
        "reconciliations": {"reward": report},
        "members": member_reports,
        "agreement": agreement(labels, numbers),
    }


# ----------------------------------------------------------------------------- table


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _member_rows(metrics: Mapping[str, Any]) -> list[str]:
    """Each member's accuracy, ties, flips and failures from its own reward, and the panel's."""

    def pct(rate: float | None) -> str:
        return "-" if rate is None else f"{rate * 100:.1f}%"

    rows = [
        (f"{m.get('member', '?')} {m.get('judge', '')} on {m.get('engine', '?')}", m["overall"])
        for m in metrics["members"]
    ]
    rows.append((f"panel ({metrics['panel']['combine']})", metrics["overall"]))
    width = max(len("member"), *(len(name) for name, _ in rows))
    keys = ("accuracy", "tie_rate", "flip_rate", "failure_rate")
    header = f"{'member':<{width}}  " + "  ".join(f"{k:>12}" for k in keys)
    lines = ["accuracy of each member from its own reward", header, "-" * len(header)]
    for name, row in rows:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{pct(row[k]):>12}" for k in keys))
    return lines


def _agreement_rows(metrics: Mapping[str, Any]) -> list[str]:
    found = metrics["agreement"]
    lines = [f"agreement between members on {found['outcome']} ({found['n']} pairs)"]
    for pair in found["cohen_kappa"]:
        a, b = pair["members"]
        lines.append(
            f"  Cohen's kappa, members {a} and {b}: {_number(pair['kappa'])} ({pair['n']})"
        )
    lines.append(f"  Fleiss' kappa: {_number(found['fleiss_kappa'])} ({found['fleiss_n']})")
    alpha = _number(found["krippendorff_alpha"])
    lines.append(f"  Krippendorff's alpha: {alpha} ({found['alpha_n']})")
    return lines


def format_panel_table(metrics: Mapping[str, Any]) -> str:
    """The report of a panel run: the panel's table, then its members' and their agreement."""
    blocks = [_member_rows(metrics), _agreement_rows(metrics)]
    return format_table(dict(metrics)) + "\n" + "\n\n".join("\n".join(b) for b in blocks) + "\n"
