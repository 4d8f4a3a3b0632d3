"""How an example becomes a judge's program arguments (the template's placeholders).

The built-in judges read conversations (``conversation``, or ``conversation_A`` and
``conversation_B``) and render history, question and replies from them. A judge written
as data reads each placeholder from the example's key of that name: text, a list of
text (rendered as a numbered list) or a whole conversation (rendered turn by turn), as
its ``[inputs]`` table says; the conversation placeholders may come from a
``conversation`` the example carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from icrm_sgl.errors import InputError
from icrm_sgl.plumbing.conversation import (
    Turn,
    check_text,
    split_conversation,
    validate_conversation,
    validate_pair,
)

NO_HISTORY = "(none)"
_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}
PAIR_KEYS = ("conversation_A", "conversation_B")
#: Placeholders a ``conversation`` supplies.
CONVERSATION_KEYS = ("history", "user_query", "model_output")
InputType = Literal["text", "list", "conversation"]
#: The types an ``[inputs]`` table may give an input.
INPUT_TYPES: tuple[str, ...] = get_args(InputType)


class Inputs(Protocol):
    """What an example must carry for a judge, and the program arguments it gives."""

    @property
    def keys(self) -> tuple[str, ...]:
        """The program's arguments (the template's per-example placeholders), in order."""

    @property
    def marks(self) -> frozenset[str]:
        """Example keys that mark an example as meant for this judge (for mixed files)."""

    def fields(self, example: Mapping[str, Any], where: str) -> dict[str, str]: ...


def render_history(history: Sequence[Turn]) -> str:
    """Earlier turns as 'Role: text' blocks, or a marker when there are none."""
    if not history:
        return NO_HISTORY
    return "\n".join(f"{_ROLE_NAMES[t['role']]}: {t['content']}" for t in history)


def check_one_form(example: Mapping[str, Any], where: str = "example") -> None:
    """An example carries the individual or the pairwise conversation keys, not both."""
    if "conversation" in example and set(PAIR_KEYS) & set(example):
        raise InputError(
            f"{where}: has both 'conversation' and 'conversation_A'/'conversation_B'; "
            "keep one form (individual or pairwise)"
        )


def conversation_fields(conversation: Any, where: str) -> dict[str, str]:
    """History, question and reply of one checked conversation."""
    ex = split_conversation(validate_conversation(conversation, f"{where}: conversation"))
    return {
        "history": render_history(ex.history),
        "user_query": ex.user_query,
        "model_output": ex.response,
    }


@dataclass(frozen=True)
class ConversationInputs:
    """One conversation, its last assistant turn judged."""

    keys: tuple[str, ...] = CONVERSATION_KEYS
    marks: frozenset[str] = frozenset({"conversation"})

    def fields(self, example: Mapping[str, Any], where: str) -> dict[str, str]:
        check_one_form(example, where)
        return conversation_fields(example.get("conversation"), where)


@dataclass(frozen=True)
class PairInputs:
    """Two conversations that differ only in the last assistant turn."""

    keys: tuple[str, ...] = ("history", "user_query", "candidate_A", "candidate_B")
    marks: frozenset[str] = frozenset(PAIR_KEYS)

    def fields(self, example: Mapping[str, Any], where: str) -> dict[str, str]:
        check_one_form(example, where)
        a, b = validate_pair(example.get(PAIR_KEYS[0]), example.get(PAIR_KEYS[1]), where)
        ex_a, ex_b = split_conversation(a), split_conversation(b)
        return {
            "history": render_history(ex_a.history),
            "user_query": ex_a.user_query,
            "candidate_A": ex_a.response,
            "candidate_B": ex_b.response,
        }


@dataclass(frozen=True)
class TemplateInputs:
    """Each placeholder from the example's key of that name, rendered by its type (text by
    default); the conversation placeholders may come from a ``conversation`` instead."""

    keys: tuple[str, ...]
    types: Mapping[str, InputType] = field(default_factory=dict, hash=False)

    @property
    def marks(self) -> frozenset[str]:
        derived = {"conversation"} if set(self.keys) & set(CONVERSATION_KEYS) else set()
        return frozenset(self.keys) | derived

    def fields(self, example: Mapping[str, Any], where: str) -> dict[str, str]:
        derived: dict[str, str] = {}
        wanted = [k for k in self.keys if k not in example]
        if "conversation" in example and set(wanted) & set(CONVERSATION_KEYS):
            derived = conversation_fields(example["conversation"], where)
        out = {}
        for key in self.keys:
            value = example.get(key, derived.get(key))
            if value is None:
                raise InputError(f"{where}: missing {key!r} (the judge's template uses {{${key}}})")
            out[key] = render_input(value, self.types.get(key, "text"), f"{where}: {key}")
        return out


def render_input(value: Any, kind: InputType, where: str) -> str:
    """One input as the prompt shows it: text as it is, a list of text as a numbered list
    (``1. …``), a conversation as 'Role: text' blocks; an ``InputError`` for a wrong value."""
    if kind == "conversation":
        return render_history(validate_conversation(value, where))
    if kind == "list":
        if not isinstance(value, list):
            raise InputError(f"{where} must be a list of text, got {type(value).__name__}")
        if not value:
            raise InputError(f"{where} is an empty list; give at least one item")
        for i, item in enumerate(value, start=1):
            if not isinstance(item, str):
                raise InputError(f"{where} item {i} is {type(item).__name__}, expected text")
            check_text(item, f"{where}: item {i}")
        return "\n".join(f"{i}. {item}" for i, item in enumerate(value, start=1))
    if not isinstance(value, str):
        raise InputError(f"{where} must be text, got {type(value).__name__}")
    return check_text(value, where)
