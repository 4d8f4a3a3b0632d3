"""Ranking N responses to one prompt: by expected score, or by debiased comparisons.

``scores`` (a judge of one response: individual, or your own judge with a reward) judges
each response once and orders them by its reward (the expected score, the mean of the
score distribution; the greedy score without probabilities).
``comparisons`` (a judge of two responses: pairwise) sorts by binary insertion: each
response finds its place among those already ranked by binary search, so the k-th needs at most
ceil(log2 k) comparisons and N responses at most about N log2 N - 1.4 N in all, close to
log2(N!), the fewest any comparison sort can guarantee. Every comparison is judged in
both orders (A/B, then B/A sharing its prefix) and decided by P(better) > 0.5, so one
response's lucky position cannot carry it. Comparing all pairs instead would take
N(N-1)/2 comparisons: 6 vs at most 5 for N=4, 120 vs at most 49 for N=16.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from icrm_sgl.errors import InputError, VerdictError
from icrm_sgl.judges.judge import Judge
from icrm_sgl.judges.supply import RANK, check_supplied, checked, one_reply, two_replies
from icrm_sgl.plumbing.conversation import validate_conversation
from icrm_sgl.plumbing.judgement import Judgement

#: A comparison's chance (a judge's) or share (a panel's reward) for its first reply.
WINS = "p_a_better"


class Ranker(Protocol):
    """What ranking asks of a judge (``ICRM``) or a panel: its judges, a batch of
    one-reply verdicts, a judged reply's row, and one comparison in both orders."""

    @property
    def judges(self) -> Sequence[Judge]: ...

    def judge_batch(
        self, examples: Sequence[Mapping[str, Any]], **gen: Any
    ) -> Iterator[Judgement]: ...

    def ranking_row(self, result: Judgement) -> tuple[dict[str, Any], tuple[float, float]]:
        """A judged reply's row and what orders it (its reward, then a tie-breaker)."""
        ...

    def ranking_comparison(
        self, build: Callable[[Judge], Mapping[str, Any]], **gen: Any
    ) -> dict[str, Any]:
        """One comparison in both orders, ``WINS`` the first reply's chance; ``build``
        gives the pair as each judge reads it."""
        ...


@dataclass
class Ranking:
    """The order (response indices, best first) and what it rests on."""

    method: str
    order: list[int]
    responses: list[dict[str, Any]]
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    judge_calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "order": self.order}
        out["responses"] = [self.responses[i] for i in self.order]
        if self.method == "comparisons":
            out["comparisons"] = self.comparisons
        out["judge_calls"] = self.judge_calls
        return out


def history_turns(
    prompt: str | None, conversation: Sequence[Mapping[str, str]] | None, where: str
) -> list[dict[str, str]]:
    """The turns before the responses: a prompt, or a conversation ending in a user turn."""
    if (prompt is None) == (conversation is None):
        raise InputError(f"{where}: give a prompt or a conversation (ending with a user turn)")
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"{where}: prompt must be non-empty text")
        return [{"role": "user", "content": prompt}]
    turns = list(conversation or [])
    if not turns or not isinstance(turns[-1], Mapping) or turns[-1].get("role") != "user":
        raise InputError(f"{where}: the conversation must end with a user turn")
    return [dict(t) for t in turns]


def _conversations(
    history: list[dict[str, str]], responses: Sequence[Any], where: str
) -> list[list[dict[str, str]]]:
    if not isinstance(responses, list | tuple) or len(responses) < 2:
        raise InputError(f"{where}: 'responses' must be a list of at least two replies")
    out = []
    for i, reply in enumerate(responses):
        if not isinstance(reply, str):
            raise InputError(f"{where}: response {i} must be text, got {type(reply).__name__}")
        turns = [*history, {"role": "assistant", "content": reply}]
        out.append(validate_conversation(turns, f"{where}: response {i}"))
    return out


def rank(
    model: Ranker,
    responses: Sequence[str],
    prompt: str | None = None,
    conversation: Sequence[Mapping[str, str]] | None = None,
    where: str = "rank",
    extras: Mapping[str, Any] | None = None,
    **gen: Any,
) -> Ranking:
    """Rank ``responses`` to ``prompt`` (or to a conversation ending with a user turn):
    by comparisons with a judge of pairs, else by each response's reward. ``extras``: the
    item's other keys (``reference`` ...), for judges whose template uses them. A panel
    ranks by its reward, every member's judge checking the item first."""
    judges = model.judges
    for judge in judges:
        examples = item_examples(judge, responses, prompt, conversation, extras, where)
    if judges[0].pair is not None:
        before = history_turns(prompt, conversation, where)
        return _by_comparisons(model, before, list(responses), dict(extras or {}), where, gen)
    return _by_scores(model, examples, where, gen)


def item_examples(
    judge: Judge,
    responses: Any,
    prompt: Any = None,
    conversation: Any = None,
    extras: Mapping[str, Any] | None = None,
    where: str = "rank",
) -> list[Mapping[str, Any]]:
    """The checked examples that rank an item (a judge of pairs: its first comparison);
    an ``InputError`` naming the item, before any engine runs, when the judge cannot."""
    before = history_turns(prompt, conversation, where)
    chats = _conversations(before, responses, where)
    check_supplied(judge, RANK)
    if judge.pair is not None:
        first = two_replies(judge, before, (responses[0], responses[1]), extras or {}, where)
        return [checked(judge, RANK, first, where)]
    return [
        checked(judge, RANK, {**one_reply(chat, extras or {}), "id": str(i)}, where)
        for i, chat in enumerate(chats)
    ]


def _by_scores(
    model: Ranker, examples: list[Mapping[str, Any]], where: str, gen: dict[str, Any]
) -> Ranking:
    rows: list[dict[str, Any]] = [{} for _ in examples]
    keys: list[tuple[float, float]] = [(0.0, 0.0) for _ in examples]
    for result in model.judge_batch(examples, **gen):
        if result.verdict is None:
            raise VerdictError(f"{where}: response {result.id}: {result.error}")
        index = int(result.id)
        row, keys[index] = model.ranking_row(result)
        rows[index] = {"index": index, **row}
    order = sorted(range(len(rows)), key=lambda i: (-keys[i][0], -keys[i][1], i))
    for place, i in enumerate(order, start=1):
        rows[i]["rank"] = place
    return Ranking("scores", order, rows, judge_calls=len(rows))


def _by_comparisons(
    model: Ranker,
    before: list[dict[str, str]],
    responses: list[str],
    extras: dict[str, Any],
    where: str,
    gen: dict[str, Any],
) -> Ranking:
    comparisons: list[dict[str, Any]] = []

    def better(i: int, j: int) -> bool:
        """Whether response i beats response j (both orders, debiased)."""
        replies = (responses[i], responses[j])

        def build(judge: Judge) -> Mapping[str, Any]:
            return checked(judge, RANK, two_replies(judge, before, replies, extras, where), where)

        found = model.ranking_comparison(build, **gen)
        comparisons.append({"a": i, "b": j, **found})
        return found[WINS] > 0.5

    order = binary_insertion(len(responses), better)
    rows = [_win_row(i, comparisons) for i in range(len(responses))]
    for place, i in enumerate(order, start=1):
        rows[i]["rank"] = place
    return Ranking("comparisons", order, rows, comparisons, judge_calls=2 * len(comparisons))


def binary_insertion(n: int, better: Callable[[int, int], bool]) -> list[int]:
    """Items 0..n-1 ordered best first, each placed by binary search among those already
    placed: at most ceil(log2 k) calls of ``better(new, placed)`` for the k-th item."""
    order: list[int] = []
    for item in range(n):
        low, high = 0, len(order)
        while low < high:
            mid = (low + high) // 2
            if better(item, order[mid]):
                high = mid
            else:
                low = mid + 1
        order.insert(low, item)
    return order


def _win_row(index: int, comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """A response's mean probability of winning over the comparisons it took part in."""
    wins = [
        c[WINS] if c["a"] == index else 1 - c[WINS]
        for c in comparisons
        if index in (c["a"], c["b"])
    ]
    mean = round(sum(wins) / len(wins), 6) if wins else None
    return {"index": index, "win_probability": mean, "comparisons": len(wins)}
