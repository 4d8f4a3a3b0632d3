"""Prompts and completions as training libraries pass them, turned into judge examples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.judges.supply import RESERVED
from icrm_sgl.plumbing.conversation import Turn

#: A prompt or completion: plain text, or chat messages ({"role", "content"} dicts).
Text = str | list[dict[str, Any]]

#: Keyword arguments trainers add that are not dataset columns (TRL's GRPO, RLOO, online
#: DPO): they never become example keys.
TRAINER_KEYWORDS = frozenset(
    {"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}
)


def to_conversation(prompt: Text, completion: Text) -> list[dict[str, Any]]:
    """Text is one user (prompt) or assistant (completion) turn; message lists are kept as
    they are, so a chat prompt's history and system turn reach the judge (which checks
    the turns, so a message without a role or content is still unchecked here)."""
    return _turns(prompt, "user", "prompt") + _turns(completion, "assistant", "completion")


def _turns(value: Text, role: str, what: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(t, dict) for t in value):
        return [{"role": t.get("role"), "content": t.get("content")} for t in value]
    raise InputError(f"{what} must be text or a list of messages, got {type(value).__name__}")


def check_batch(name: str, values: Any) -> Sequence[Any]:
    """A trainer's batch argument (``prompts``, ``completions``) must be a list: not None,
    one text (a string is a sequence of characters) or a number."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InputError(f"{name} must be a list, got {type(values).__name__}")
    return values


def column_keys(columns: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """Per completion, the dataset columns a trainer passed (one value per completion) as
    example keys, so that a judge whose template names a column (``{$reference}``) gets it.
    A column with another number of values is an error: its values would meet the wrong
    completions.

    This is the one place where trainer keyword arguments become example keys."""
    names = [
        name
        for name, values in columns.items()
        if name not in TRAINER_KEYWORDS | RESERVED
        and isinstance(values, Sequence)
        and not isinstance(values, str | bytes)
    ]
    for name in names:
        if len(columns[name]) != count:
            raise InputError(
                f"column {name!r} has {len(columns[name])} values for {count} completions"
            )
    return [{name: columns[name][i] for name in names} for i in range(count)]


def to_query(conversation: Sequence[Turn]) -> tuple[str, str]:
    """A one-exchange conversation as OpenRLHF's (prompt, response) text pair; longer
    conversations have no place in that protocol."""
    if len(conversation) != 2 or [t["role"] for t in conversation] != ["user", "assistant"]:
        raise InputError(
            "a /get_reward endpoint takes one user prompt and one reply; "
            f"got {len(conversation)} turns (judge multi-turn chats in-process)"
        )
    prompt, response = (t["content"] for t in conversation)
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise InputError("message content must be text")
    return prompt, response
