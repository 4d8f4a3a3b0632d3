"""What each command hands a judge, and the one mapping from it to the judge's example.

A consumer of rewards (``rank``, serve's ``/get_reward``, ``ICRMReward``, verl's
``compute_score``) has a conversation ending in the reply to judge (or the turns before
two replies), perhaps a reference, and keys of its own per item: rank's item keys, a
request's per-query fields, TRL's dataset columns, verl's ``extra_info``. ``one_reply``
and ``two_replies`` make of these the example ``Judge.example_fields`` reads;
``check_supplied`` refuses, before an engine loads, a judge a consumer can never feed;
``checked`` fails one item in one line that says what the consumer supplies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.judges.inputs import (
    CONVERSATION_KEYS,
    PAIR_KEYS,
    TemplateInputs,
    conversation_fields,
)
from icrm_sgl.judges.judge import Judge

#: Example keys a consumer's own keys can never replace: the id and the conversations.
RESERVED = frozenset({"id", "conversation", *PAIR_KEYS})
#: What a judge of two replies gets beside the replies: the turns before them.
CONTEXT_KEYS = ("history", "user_query")


@dataclass(frozen=True)
class Consumer:
    """What a command supplies a judge: the inputs it always has (with where each comes
    from, when that is not obvious), what its per-item keys are called (they count as
    supplied where an item has them), and whether it can feed a judge of two replies."""

    name: str
    supplies: tuple[str, ...]
    extras: str
    sources: Mapping[str, str] = field(default_factory=dict)
    pairs: bool = False

    def describe(self, judge: Judge, keys: Iterable[str] = ()) -> str:
        """``rank supplies history, user_query, model_output and item keys (reference)``."""
        given = [*CONTEXT_KEYS, *judge.pair.sides] if judge.pair else list(self.supplies)
        named = [f"{key} ({self.sources[key]})" if key in self.sources else key for key in given]
        shown = sorted(set(keys) - RESERVED)
        listed = f" ({', '.join(shown)})" if shown else ""
        return f"{self.name} supplies {', '.join(named)} and {self.extras}{listed}"


RANK = Consumer("rank", CONVERSATION_KEYS, "item keys", pairs=True)
GET_REWARD = Consumer(
    "serve /get_reward",
    (*CONVERSATION_KEYS, "reference"),
    "per-query fields",
    {"reference": "from labels"},
    pairs=True,
)
REWARD_FUNCTION = Consumer("ICRMReward", CONVERSATION_KEYS, "dataset columns")
VERL = Consumer(
    "verl compute_score",
    ("model_output", "reference", "data_source", *CONTEXT_KEYS),
    "extra_info keys",
    {
        "model_output": "solution_str",
        "reference": "ground_truth",
        "history": "with extra_info['question']",
        "user_query": "extra_info['question']",
    },
)


def check_supplied(judge: Judge, consumer: Consumer) -> None:
    """Refuse, in one line, a judge whose inputs ``consumer`` can never supply or whose
    verdict gives it no reward; item keys are checked per item (``checked``)."""
    if not judge.has_reward:
        raise InputError(
            f"{consumer.name} needs a reward; judge {judge.name} names none "
            '(reward = "<field>", or [reward] weights, in the rubric)'
        )
    if judge.pair is not None:
        if not consumer.pairs:
            raise InputError(
                f"{consumer.name} judges one reply at a time; judge {judge.name} compares "
                f"two ({', '.join(judge.pair.sides)})"
            )
        return
    if not {"model_output", "conversation"} & set(judge.inputs.keys):
        raise InputError(
            f"{consumer.describe(judge)}; judge {judge.name} has no {{$model_output}} to "
            f"put the reply in (its inputs: {', '.join(judge.inputs.keys)})"
        )


def one_reply(conversation: Sequence[Mapping[str, Any]], extras: Mapping[str, Any]) -> dict:
    """The example of a judge of one reply: the conversation ending in the reply, and the
    consumer's own keys (which cannot replace the conversation or what it gives)."""
    own = {k: v for k, v in extras.items() if k not in RESERVED | set(CONVERSATION_KEYS)}
    return {**own, "conversation": list(conversation)}


def two_replies(
    judge: Judge,
    before: Sequence[Mapping[str, Any]],
    replies: tuple[Any, Any],
    extras: Mapping[str, Any],
    where: str,
) -> dict[str, Any]:
    """The example of a judge of two replies to the same turns ``before``: each side a
    whole conversation where the judge reads conversations (the built-in pairwise judge,
    ``"conversation"`` inputs), else the reply's text; the history and question beside."""
    if judge.pair is None:
        raise InputError(f"{where}: judge {judge.name} judges one reply, not two")
    sides = judge.pair.sides
    chats = [[*before, {"role": "assistant", "content": reply}] for reply in replies]
    context = conversation_fields(chats[0], where)
    own = {k: v for k, v in extras.items() if k not in RESERVED | {*CONTEXT_KEYS, *sides}}
    values = chats if _reads_conversation(judge, sides[0]) else list(replies)
    return {**own, **{k: context[k] for k in CONTEXT_KEYS}, **dict(zip(sides, values, strict=True))}


def checked(
    judge: Judge, consumer: Consumer, example: Mapping[str, Any], where: str
) -> Mapping[str, Any]:
    """``example`` once the judge can read it; else an ``InputError`` naming the item, and
    for an input it lacks, what the consumer supplies."""
    try:
        judge.example_fields(example, where)
    except InputError as exc:
        if str(exc).startswith(f"{where}: missing "):
            raise InputError(f"{exc}; {consumer.describe(judge, example)}") from None
        raise
    return example


def _reads_conversation(judge: Judge, key: str) -> bool:
    """Whether the judge reads input ``key`` as a whole conversation (a list of turns)."""
    inputs = judge.inputs
    typed = isinstance(inputs, TemplateInputs) and inputs.types.get(key) == "conversation"
    return key in PAIR_KEYS or typed
