"""Conversation checks and the split into history / last user query / response.

Every input is checked here before any model call, and errors name the example and the
turn so a user can find the problem in a large file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from icrm_sgl.errors import InputError

Turn = dict[str, str]
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Exchange:
    """A conversation split for judging: what came before, the last query, the response."""

    history: tuple[Turn, ...]
    user_query: str
    response: str


def _fail(where: str, message: str) -> InputError:
    return InputError(f"{where}: {message}")


def check_text(text: str, where: str) -> str:
    """Reject text that is not valid Unicode (a lone surrogate such as ``"\\ud800"``, which
    JSON allows but no engine can encode) rather than altering what the user wrote."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _fail(
            where, f"contains a lone surrogate {text[exc.start]!a} at character {exc.start}"
        ) from exc
    return text


def _check_turn(turn: Any, index: int, where: str) -> Turn:
    if not isinstance(turn, dict):
        raise _fail(where, f"turn {index} is {type(turn).__name__}, expected an object")
    extra = set(turn) - {"role", "content"}
    if "role" not in turn or "content" not in turn or extra:
        raise _fail(where, f"turn {index} must have exactly the keys 'role' and 'content'")
    role, content = turn["role"], turn["content"]
    if role not in _ROLES:
        raise _fail(where, f"turn {index} has role {role!r}; expected one of {_ROLES}")
    if not isinstance(content, str):
        raise _fail(where, f"turn {index} content is {type(content).__name__}, expected text")
    check_text(content, f"{where}: turn {index} content")
    return {"role": role, "content": content}


def validate_conversation(conversation: Any, where: str = "conversation") -> list[Turn]:
    """Check roles, order and types; return a clean copy of the turns."""
    if not isinstance(conversation, list) or not conversation:
        raise _fail(where, "expected a non-empty list of {'role', 'content'} turns")
    turns = [_check_turn(t, i, where) for i, t in enumerate(conversation)]
    body = turns[1:] if turns[0]["role"] == "system" else turns
    for i, turn in enumerate(body):
        index = i + (len(turns) - len(body))
        expected = "user" if i % 2 == 0 else "assistant"
        if turn["role"] != expected:
            raise _fail(where, f"turn {index} has role {turn['role']!r}, expected {expected!r}")
    if not body:
        raise _fail(where, "has no user turn")
    if body[-1]["role"] != "assistant":
        raise _fail(where, "must end with an assistant turn (the response to judge)")
    return turns


def split_conversation(turns: list[Turn]) -> Exchange:
    """Split validated turns into history, last user query and the final response."""
    return Exchange(
        history=tuple(turns[:-2]),
        user_query=turns[-2]["content"],
        response=turns[-1]["content"],
    )


def validate_pair(
    conversation_a: Any, conversation_b: Any, where: str = "example"
) -> tuple[list[Turn], list[Turn]]:
    """Check both conversations and that they differ only in the last assistant turn."""
    a = validate_conversation(conversation_a, f"{where}: conversation_A")
    b = validate_conversation(conversation_b, f"{where}: conversation_B")
    if len(a) != len(b):
        raise _fail(where, f"conversation_A has {len(a)} turns but conversation_B has {len(b)}")
    for i, (ta, tb) in enumerate(zip(a[:-1], b[:-1], strict=True)):
        if ta != tb:
            raise _fail(
                where,
                f"conversations differ at turn {i}; only the last assistant turn may differ",
            )
    return a, b
