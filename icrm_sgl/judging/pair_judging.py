"""Debiased pairwise judging: each pair judged A/B and then B/A, reconciled by probability.

The B/A call shows the same history and question, so it shares the A/B call's prompt up
to the first reply and reuses its prefix. Averaging the two orders' choice distributions
(the B/A one read from A's side) cancels a judge's preference for a position.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from icrm_sgl.errors import InputError, VerdictError
from icrm_sgl.judges import Judge
from icrm_sgl.judging.pair_orders import Reconciliation, choice_view, reconcile
from icrm_sgl.plumbing.judgement import Judgement


class PairJudge(Protocol):
    """What pair judging asks of a model (``ICRM``): its judge and a batch of verdicts."""

    definition: Judge
    rm_type: str

    def judge_batch(
        self,
        examples: Iterable[Mapping[str, Any]],
        shots: Sequence[Any] | None = None,
        progress: bool = False,
        **gen: Any,
    ) -> Iterator[Judgement]: ...


#: Why a one-reply example cannot be judged in both orders (score and serve say it alike).
ONE_REPLY = "--both-orders compares two replies: it needs pairwise examples"

#: Suffixes of the two calls' ids, and the names the result gives the two verdicts.
ORDERS = {"#ab": "A/B", "#ba": "B/A"}


@dataclass
class PairJudgement:
    """A pair's reconciled result, or the error that kept it from one.

    ``verdicts`` maps "A/B" (and "B/A" when both orders ran) to the verdict as the judge
    wrote it: in the B/A verdict the judge's "A" is the caller's B.
    """

    id: str
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    reconciliation: Reconciliation | None = None
    from_probabilities: bool = False
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reconciliation is not None

    def result(self) -> dict[str, Any]:
        """The reconciled numbers and both verdicts (the CLI's output for one pair)."""
        if self.reconciliation is None:
            raise VerdictError(f"pair {self.id}: {self.error}")
        numbers = self.reconciliation.as_dict()
        return {**numbers, "from_probabilities": self.from_probabilities, "verdicts": self.verdicts}

    def record(self) -> dict[str, Any]:
        """The JSONL record: id, the result (or error) and each call's meta."""
        body = {"result": self.result()} if self.ok else {"error": self.error}
        return {"id": self.id, **body, "meta": self.meta}


#: Per-call meta entries that a pair's meta adds up over its calls.
SUMMED = ("seconds", "prompt_tokens", "cached_tokens", "completion_tokens", "retries")


def _pair_meta(calls: dict[str, Judgement]) -> dict[str, Any]:
    """Each call's meta under its order's name, plus the totals of the countable entries."""
    metas = [j.meta for j in calls.values()]
    totals = {k: sum(m.get(k) or 0 for m in metas) for k in SUMMED if any(k in m for m in metas)}
    if "seconds" in totals:
        totals["seconds"] = round(totals["seconds"], 3)
    return {**totals, "orders": {ORDERS[suffix]: j.meta for suffix, j in calls.items()}}


def _combine(pair_id: str, calls: dict[str, Judgement], judge: Judge) -> PairJudgement:
    """The pair's result from its calls, read through the judge's choice field."""
    key = str(judge.reward)
    meta = _pair_meta(calls)
    failed = [(ORDERS[suffix], j) for suffix, j in calls.items() if not j.ok]
    if failed:
        if all(j.meta.get("stage") == "input" for _, j in failed):  # the same fault twice
            return PairJudgement(pair_id, error=failed[0][1].error, meta={"stage": "input"})
        errors = "; ".join(f"{name}: {j.error}" for name, j in failed)
        return PairJudgement(pair_id, error=errors, meta=meta)
    views = [
        choice_view(j.verdict[key], j.meta.get("probabilities"), suffix == "#ba", judge)
        for suffix, j in calls.items()
        if j.verdict is not None
    ]
    rec = reconcile(views)
    has_probs = all("probabilities" in j.meta for j in calls.values())
    verdicts = {ORDERS[suffix]: j.verdict for suffix, j in calls.items() if j.verdict is not None}
    return PairJudgement(pair_id, verdicts, rec, has_probs, meta=meta)


def _calls(
    example: Mapping[str, Any], pair_id: str, both_orders: bool, sides: tuple[str, str]
) -> list[dict[str, Any]]:
    ab = {**example, "id": f"{pair_id}#ab"}
    if not both_orders:
        return [ab]
    first, second = sides
    swapped = {first: example.get(second), second: example.get(first)}
    return [ab, {**example, **swapped, "id": f"{pair_id}#ba"}]


def judge_pairs(
    model: PairJudge,
    examples: Iterable[Mapping[str, Any]],
    both_orders: bool = False,
    shots: Sequence[Any] | None = None,
    progress: bool = False,
    **gen: Any,
) -> Iterator[PairJudgement]:
    """Judge pairs in one batch (both orders of a pair adjacent); yield each when complete."""
    pair = model.definition.pair
    if pair is None:
        raise InputError(f"judging pairs needs a pairwise model, not {model.rm_type!r}")
    calls: list[dict[str, Any]] = []
    for i, example in enumerate(examples):
        pair_id = str(example.get("id", i)) if isinstance(example, Mapping) else str(i)
        record = example if isinstance(example, Mapping) else {}
        calls.extend(_calls(record, pair_id, both_orders, pair.sides))
    wanted = 2 if both_orders else 1
    pending: dict[str, dict[str, Judgement]] = {}
    for result in model.judge_batch(calls, shots=shots, progress=progress, **gen):
        pair_id, suffix = result.id[:-3], result.id[-3:]
        pending.setdefault(pair_id, {})[suffix] = result
        if len(pending[pair_id]) == wanted:
            yield _combine(pair_id, dict(sorted(pending.pop(pair_id).items())), model.definition)


def judge_pair(
    model: PairJudge,
    example: Mapping[str, Any],
    both_orders: bool = False,
    shots: Sequence[Any] | None = None,
    **gen: Any,
) -> PairJudgement:
    """One pair, reconciled; raises ``InputError`` / ``VerdictError`` instead of failing soft."""
    (result,) = judge_pairs(model, [example], both_orders, shots, **gen)
    if not result.ok:
        error = InputError if result.meta.get("stage") == "input" else VerdictError
        raise error(str(result.error))  # a failed pair always carries its error
    return result
