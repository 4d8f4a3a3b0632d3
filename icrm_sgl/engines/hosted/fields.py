"""What one hosted request asks for: some of the verdict's fields, their schema and a token
budget that fits them, and how a reply (whole, or cut by its budget) gives them back.

A hosted API cannot cap each field in tokens the way the programs do, so a request's
``max_tokens`` is derived from the fields it asks for (each text field's share, a few
tokens for a score or choice, room for the keys and punctuation), and a reply cut by that
budget is not lost: its finished fields and the text field it was cut in are kept (the
cut text closed, as the programs close a field at its budget) and the next request asks
only for the fields still missing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydantic_core

from icrm_sgl.schemas import grammar_schema, json_schema

if TYPE_CHECKING:
    from icrm_sgl.judges import Judge

#: Tokens for a score or a choice value.
VALUE_TOKENS = 8
#: Tokens per character of the keys and punctuation a reply writes around the values
#: (JSON keys tokenize at ~3-4 characters a token; half a token each leaves room for the
#: whitespace a grammar lets a model add).
SKELETON_TOKENS_PER_CHAR = 0.5


def _text_field(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "string" and "enum" not in spec and "const" not in spec


@dataclass(frozen=True)
class FieldRequest:
    """The fields of one judge (a built-in mode's name or a ``Judge``) that a request asks
    for, in the verdict's order."""

    rm_type: Judge | str
    keys: tuple[str, ...]

    @classmethod
    def whole(cls, rm_type: Judge | str) -> FieldRequest:
        """Every field of the verdict."""
        return cls(rm_type, tuple(json_schema(rm_type)["properties"]))

    @property
    def text_keys(self) -> tuple[str, ...]:
        """The free-text fields among ``keys`` (not the score or choice)."""
        props = json_schema(self.rm_type)["properties"]
        return tuple(k for k in self.keys if _text_field(props[k]))

    def missing(self, found: dict[str, Any]) -> FieldRequest:
        """The fields not yet in ``found``."""
        return FieldRequest(self.rm_type, tuple(k for k in self.keys if k not in found))

    def json_schema(self) -> dict[str, Any]:
        """The verdict schema restricted to these fields (strict structured output, tools)."""
        return _restrict(json_schema(self.rm_type), self.keys)

    def grammar_schema(self) -> dict[str, Any]:
        """The grammar-friendly schema (llama.cpp, vLLM) restricted to these fields."""
        return _restrict(grammar_schema(self.rm_type), self.keys)

    def budget(self, field_tokens: int) -> int:
        """``max_tokens`` for a reply holding these fields: ``field_tokens`` per text field,
        ``VALUE_TOKENS`` per other value, and room for the keys and punctuation."""
        n_text = len(self.text_keys)
        skeleton = len(json.dumps(dict.fromkeys(self.keys, ""), indent=1))
        values = field_tokens * n_text + VALUE_TOKENS * (len(self.keys) - n_text)
        return values + math.ceil(skeleton * SKELETON_TOKENS_PER_CHAR)


def _restrict(schema: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    props = schema["properties"]
    return {**schema, "properties": {k: props[k] for k in keys}, "required": list(keys)}


class Unreadable(ValueError):
    """A reply that is not a JSON object (or a prefix of one, when it was cut)."""


def read_fields(text: str, cut: bool, request: FieldRequest) -> dict[str, Any]:
    """The asked-for fields a reply holds (and any unknown key, for validation to refuse).
    A whole reply must be one JSON object; a reply cut by its budget keeps its finished
    fields and the text field it was cut in (a score or choice cut there may be
    incomplete, so it is left for the next request)."""
    try:
        data = pydantic_core.from_json(text, allow_partial="trailing-strings" if cut else False)
    except ValueError as exc:
        raise Unreadable(f"Invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Unreadable(f"expected a JSON object, got {type(data).__name__}")
    if cut and data:
        last = next(reversed(data))
        if last not in request.text_keys:
            del data[last]
    known = FieldRequest.whole(request.rm_type).keys
    # Fields asked for earlier are not taken again; unknown keys stay, for validation to name.
    return {k: v for k, v in data.items() if k in request.keys or k not in known}
