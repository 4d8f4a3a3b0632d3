"""Judging labelled pairs: order assignment, caching, and per-pair records."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from icrm_sgl.evaluation.loaders import LabelledPair
from icrm_sgl.evaluation.metrics import reconcile
from icrm_sgl.evaluation.store import ResultStore
from icrm_sgl.icrm import ICRM
from icrm_sgl.judgement import Judgement
from icrm_sgl.judges import Judge

ORDERS = ("both", "ab", "alternate")


@dataclass(frozen=True)
class Job:
    """One model call: a pair shown in one order (pairwise) or one side (individual)."""

    pair: LabelledPair
    slot: str
    example: dict[str, Any]


def pairwise_jobs(pair: LabelledPair, index: int, orders: str) -> list[Job]:
    """``both``: each order; ``ab``: chosen shown as A; ``alternate``: by pair index."""
    chosen_first = Job(
        pair, "chosen_first", {"conversation_A": pair.chosen, "conversation_B": pair.rejected}
    )
    rejected_first = Job(
        pair, "rejected_first", {"conversation_A": pair.rejected, "conversation_B": pair.chosen}
    )
    if orders == "both":
        return [chosen_first, rejected_first]
    if orders == "alternate" and index % 2:
        return [rejected_first]
    return [chosen_first]


def individual_jobs(pair: LabelledPair) -> list[Job]:
    return [
        Job(pair, "chosen", {"conversation": pair.chosen}),
        Job(pair, "rejected", {"conversation": pair.rejected}),
    ]


def pair_record(pair: LabelledPair, judge: Judge, results: list[tuple[str, Judgement]]) -> dict:
    """The stored record of one pair (see ``metrics`` for the fields)."""
    meta = _pair_meta([j for _, j in results])
    mode = judge.name
    if judge.pair is not None:  # one call compared both replies
        judgements = [_judgement(slot, j) for slot, j in results]
        margin = reconcile(judgements)
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
    scores = {slot: j.verdict["score"] if j.verdict is not None else None for slot, j in results}
    errors = {slot: j.error for slot, j in results if not j.ok}
    probabilities = {slot: j.meta.get("probabilities") for slot, j in results if j.ok}
    chosen, rejected = scores["chosen"], scores["rejected"]  # the pair's two slots
    margin = chosen - rejected if chosen is not None and rejected is not None else None
    return {
        "id": pair.id,
        "subset": pair.subset,
        "mode": mode,
        "scores": scores,
        "probabilities": probabilities,
        "errors": errors,
        "margin": margin,
        "failed": margin is None,
        **_label(pair),
        "meta": meta,
    }


def _label(pair: LabelledPair) -> dict[str, str]:
    """``label: tie`` for a pair the annotators judged equal, ``group`` for a best-of-N
    prompt's pair; nothing for an ordinary pair."""
    out = {"label": "tie"} if pair.tie else {}
    return {**out, "group": pair.group} if pair.group is not None else out


def _judgement(slot: str, result: Judgement) -> dict[str, Any]:
    """One order's stored verdict: its choice and, when the engine gave them, probabilities."""
    verdict = result.verdict
    out = {"order": slot, "choice": verdict["choice"] if verdict is not None else None}
    out["error"] = result.error
    if result.ok and "probabilities" in result.meta:
        out["probabilities"] = result.meta["probabilities"]
    return out


def _pair_meta(judgements: list[Judgement]) -> dict[str, Any]:
    """What judging the pair cost in this run: a cached verdict counts as a hit, and its
    original tokens and seconds (kept in its own meta) are not spent again."""
    total = {
        "prompt_tokens": 0,
        "cached_tokens": 0,
        "completion_tokens": 0,
        "seconds": 0.0,
        "cache_hits": 0,
    }
    for j in judgements:
        if j.meta.get("from_cache"):
            total["cache_hits"] += 1
            continue
        for key in ("prompt_tokens", "cached_tokens", "completion_tokens", "seconds"):
            total[key] += j.meta.get(key) or 0
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

    def jobs(self, pairs: Sequence[LabelledPair]) -> list[Job]:
        if self.model.definition.pair is None:  # one reply per call: score each side
            return [job for pair in pairs for job in individual_jobs(pair)]
        return [job for i, pair in enumerate(pairs) for job in pairwise_jobs(pair, i, self.orders)]

    def run(self, pairs: Sequence[LabelledPair], store: ResultStore, progress: bool = True) -> int:
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
                    record = pair_record(job.pair, self.model.definition, pending.pop(job.pair.id))
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

    def _judge(self, jobs: list[Job]) -> Iterator[tuple[Job, Judgement]]:
        """Every job through the model in one batch (its verdict cache, when on, first)."""
        by_id = {f"{job.pair.id}#{job.slot}": job for job in jobs}
        examples = [{**job.example, "id": job_id} for job_id, job in by_id.items()]
        for result in self.model.judge_batch(examples, **self.gen):
            yield by_id[result.id], result
