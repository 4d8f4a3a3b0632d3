"""Prompts and completions as training libraries pass them, turned into conversations."""

from __future__ import annotations

from typing import Any

from icrm_sgl.conversation import Turn
from icrm_sgl.errors import InputError

#: A prompt or completion: plain text, or chat messages ({"role", "content"} dicts).
Text = str | list[dict[str, Any]]


def to_conversation(prompt: Text, completion: Text) -> list[Turn]:
    """Text is one user (prompt) or assistant (completion) turn; message lists are kept as
    they are, so a chat prompt's history and system turn reach the judge."""
    return _turns(prompt, "user", "prompt") + _turns(completion, "assistant", "completion")


def _turns(value: Text, role: str, what: str) -> list[Turn]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(t, dict) for t in value):
        return [{"role": t.get("role"), "content": t.get("content")} for t in value]
    raise InputError(f"{what} must be text or a list of messages, got {type(value).__name__}")
