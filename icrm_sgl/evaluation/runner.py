"""Judging labelled pairs (or scored replies) with any judge: how a row becomes the
judge's inputs, order assignment, caching, and per-pair records."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.loaders import LabelledPair, ScoredReply
from icrm_sgl.evaluation.metrics import DECIMALS, plain_number, reconcile
from icrm_sgl.evaluation.store import ResultStore
from icrm_sgl.judges import Judge
from icrm_sgl.judges.inputs import CONVERSATION_KEYS, TemplateInputs
from icrm_sgl.judges.supply import (
    CONTEXT_KEYS,
    Consumer,
    check_supplied,
    checked,
    one_reply,
    two_replies,
)
from icrm_sgl.judging.icrm import ICRM
from icrm_sgl.plumbing.judgement import Judgement

ORDERS = ("both", "ab", "alternate")


#: What eval hands a judge: a reply's conversation (or the turns before two replies) and
#: the row's fields named like an input (``reference``) or mapped with ``--columns``.
EVAL = Consumer(
    "eval",
    CONVERSATION_KEYS,
    "row fields named like an input or mapped with --columns NAME=FIELD",
    pairs=True,
)

Item = LabelledPair | ScoredReply


@dataclass(frozen=True)
class Job:
    """One model call: a pair shown in one order (two-reply judge), one side of a pair
    or one scored reply (one-reply judge)."""

    pair: Item
    slot: str
    example: dict[str, Any]


def row_inputs(judge: Judge) -> list[str]:
    """The judge's inputs that come from each row's own fields (a rubric's inputs that
    the conversation does not give)."""
    if not isinstance(judge.inputs, TemplateInputs):  # a built-in judge reads conversations
        return []
    given = (*CONTEXT_KEYS, *judge.pair.sides) if judge.pair else CONVERSATION_KEYS
    return [key for key in judge.inputs.keys if key not in given]


def check_judge(judge: Judge, items: Sequence[Item]) -> None:
    """Refuse, before any engine loads, a judge eval cannot run on ``items``: no reward,
    two replies for replies scored one by one, or an input a row does not supply."""
    check_supplied(judge, EVAL)
    if judge.pair is not None and any(isinstance(item, ScoredReply) for item in items):
        raise InputError(
            f"judge {judge.name} compares two replies; replies with human scores need a "
            "judge of one reply"
        )
    for item in items:
        missing = [key for key in row_inputs(judge) if key not in item.inputs]
        if missing:
            raise InputError(
                f"judge {judge.name}: no input {missing[0]!r} for {item.id!r}; "
                f"{EVAL.describe(judge, item.inputs)}"
            )


def pairwise_jobs(judge: Judge, pair: LabelledPair, index: int, orders: str) -> list[Job]:
    """``both``: each order; ``ab``: chosen shown first; ``alternate``: by pair index."""
    before = pair.chosen[:-1]
    chosen, rejected = pair.chosen[-1]["content"], pair.rejected[-1]["content"]
    chosen_first = Job(
        pair,
        "chosen_first",
        two_replies(judge, before, (chosen, rejected), pair.inputs, f"pair {pair.id}"),
    )
    rejected_first = Job(
        pair,
        "rejected_first",
        two_replies(judge, before, (rejected, chosen), pair.inputs, f"pair {pair.id}"),
    )
    if orders == "both":
        return [chosen_first, rejected_first]
    if orders == "alternate" and index % 2:
        return [rejected_first]
    return [chosen_first]


def individual_jobs(item: Item) -> list[Job]:
    """Each reply on its own: both sides of a pair, or the one reply a person scored."""
    if isinstance(item, ScoredReply):
        return [Job(item, "reply", one_reply(item.conversation, item.inputs))]
    return [
        Job(item, "chosen", one_reply(item.chosen, item.inputs)),
        Job(item, "rejected", one_reply(item.rejected, item.inputs)),
    ]


def jobs_for(judge: Judge, items: Sequence[Item], orders: str) -> list[Job]:
    """Every model call of ``items``: each reply (one-reply judge) or each order shown."""
    if judge.pair is None:
        return [job for item in items for job in individual_jobs(item)]
    return [
        job
        for i, item in enumerate(items)
        if isinstance(item, LabelledPair)
        for job in pairwise_jobs(judge, item, i, orders)
    ]


def check_jobs(judge: Judge, jobs: Sequence[Job]) -> None:
    """Every call's inputs as the judge reads them: a bad one stops the run before judging."""
    for job in jobs:
        checked(judge, EVAL, job.example, f"{job.pair.id} ({job.slot})")


def _greedy(judge: Judge, result: Judgement) -> float | int | None:
    """The value the verdict names, as a number (its reward without probabilities); a
    combined reward names no one value, so its reward stands for it."""
    if result.verdict is None:
        return None
    meta = {} if judge.reward is not None else result.meta
    return plain_number(judge.reward_value(result.verdict, meta))


def _reward(judge: Judge, result: Judgement) -> float | None:
    """The verdict's reward: its expected value where the engine gave probabilities."""
    if result.verdict is None:
        return None
    return round(judge.reward_value(result.verdict, result.meta), DECIMALS)


def pair_record(pair: Item, judge: Judge, results: list[tuple[str, Judgement]]) -> dict:
    """The stored record of one pair or scored reply (see ``metrics`` for the fields)."""
    meta = call_costs([j.meta for _, j in results])
    mode = judge.name
    if isinstance(pair, ScoredReply):
        ((_, result),) = results
        return {
            "id": pair.id,
            "subset": pair.subset,
            "mode": mode,
            "human_score": pair.score,
            "score": _greedy(judge, result),
            "reward": _reward(judge, result),
            "probabilities": result.meta.get("probabilities") if result.ok else None,
            "error": result.error,
            "failed": not result.ok,
            "verdict": result.verdict,
            "meta": meta,
        }
    if judge.pair is not None:  # one call compared both replies
        judgements = [_judgement(judge, slot, j) for slot, j in results]
        margin = reconcile(judgements, judge)
        return {
            "id": pair.id,
            "subset": pair.subset,
            "mode": mode,
            "judgements": judgements,
            "margin": margin,
            "failed": margin is None,
            **_label(pair),
            "meta": meta,
        }
    scores = {slot: _greedy(judge, j) for slot, j in results}
    rewards = {slot: _reward(judge, j) for slot, j in results}
    errors = {slot: j.error for slot, j in results if not j.ok}
    probabilities = {slot: j.meta.get("probabilities") for slot, j in results if j.ok}
    chosen, rejected = scores["chosen"], scores["rejected"]  # the pair's two slots
    margin = chosen - rejected if chosen is not None and rejected is not None else None
    return {
        "id": pair.id,
        "subset": pair.subset,
        "mode": mode,
        "scores": scores,
        "rewards": rewards,
        "probabilities": probabilities,
        "errors": errors,
        "margin": margin,
        "failed": margin is None,
        **_label(pair),
        "verdicts": {slot: j.verdict for slot, j in results},
        "meta": meta,
    }


def _label(pair: LabelledPair) -> dict[str, str]:
    """``label: tie`` for a pair the annotators judged equal, ``group`` for a best-of-N
    prompt's pair; nothing for an ordinary pair."""
    out = {"label": "tie"} if pair.tie else {}
    return {**out, "group": pair.group} if pair.group is not None else out


def _judgement(judge: Judge, slot: str, result: Judgement) -> dict[str, Any]:
    """One order's stored verdict: its reward field's choice, the whole verdict (None
    when it failed) and, when the engine gave them, that field's probabilities."""
    verdict, key = result.verdict, str(judge.reward)
    out = {"order": slot, "choice": verdict[key] if verdict is not None else None}
    out.update(error=result.error, verdict=verdict)
    if result.ok and "probabilities" in result.meta:
        out["probabilities"] = result.meta["probabilities"]
    return out


def call_costs(metas: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What the model calls of a pair (each call's meta) cost in this run: a cached
    verdict counts as a hit, and its original tokens and seconds (kept in its own meta)
    are not spent again."""
    total = {
        "prompt_tokens": 0,
        "cached_tokens": 0,
        "completion_tokens": 0,
        "seconds": 0.0,
        "cache_hits": 0,
    }
    for meta in metas:
        if meta.get("from_cache"):
            total["cache_hits"] += 1
            continue
        for key in ("prompt_tokens", "cached_tokens", "completion_tokens", "seconds"):
            total[key] += meta.get(key) or 0
    total["seconds"] = round(total["seconds"], 3)
    return total


@dataclass
class Progress:
    """Running totals for the progress bar."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    def update(self, record: dict) -> dict[str, str]:
        self.prompt_tokens += record["meta"]["prompt_tokens"]
        self.cached_tokens += record["meta"]["cached_tokens"]
        share = self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0
        return {"reuse": f"{share:.0%}"}


class Evaluator:
    """Runs an ICRM over labelled pairs, writing one record per pair as it completes."""

    def __init__(self, model: ICRM, orders: str = "both", **gen: Any) -> None:
        self.model = model
        self.orders = orders
        self.gen = gen
        self.fingerprint = model.fingerprint(**gen)

    def config(self, source: str) -> dict[str, Any]:
        """What the results depend on; ``--resume`` refuses a run whose config differs."""
        return {**self.fingerprint, "orders": self.orders, "source": source}

    def jobs(self, pairs: Sequence[Item]) -> list[Job]:
        return jobs_for(self.model.definition, pairs, self.orders)

    def run(self, pairs: Sequence[Item], store: ResultStore, progress: bool = True) -> int:
        """Judge ``pairs`` (already filtered for resume); return how many were written."""
        jobs = self.jobs(pairs)
        bar = tqdm(
            total=len(pairs), disable=not progress, file=sys.stderr, unit="pair", dynamic_ncols=True
        )
        totals = Progress()
        pending: dict[str, list[tuple[str, Judgement]]] = {}
        expected = Counter(job.pair.id for job in jobs)
        written = 0
        try:
            for job, result in self._judge(jobs):
                pending.setdefault(job.pair.id, []).append((job.slot, result))
                if len(pending[job.pair.id]) == expected[job.pair.id]:
                    record = self.record(job.pair, pending.pop(job.pair.id))
                    store.append(record)
                    written += 1
                    bar.set_postfix(totals.update(record), refresh=False)
                    bar.update()
        except BaseException:
            bar.leave = False  # an interrupted run's summary, not its bar, is the last line
            raise
        finally:
            bar.close()
        return written

    def record(self, pair: Item, results: list[tuple[str, Judgement]]) -> dict[str, Any]:
        """The stored record of a pair once each of its jobs has a result."""
        return pair_record(pair, self.model.definition, results)

    def _judge(self, jobs: list[Job]) -> Iterator[tuple[Job, Judgement]]:
        """Every job through the model in one batch (its verdict cache, when on, first)."""
        by_id = {f"{job.pair.id}#{job.slot}": job for job in jobs}
        examples = [{**job.example, "id": job_id} for job_id, job in by_id.items()]
        for result in self.model.judge_batch(examples, **self.gen):
            yield by_id[result.id], result
