"""What one hosted request asks for: some of the verdict's fields, their schema, the length
each text field may take, a token budget that fits them, and how a reply (whole, or cut
by its budget) gives them back.

A hosted API cannot cap each field in tokens the way the programs do. A server that
compiles the constraint (llama.cpp, vLLM, sglang) gets each text field bounded in
characters instead (``max_chars``: its token budget times ``CHARS_PER_TOKEN``), so one
reply holds a complete verdict. The request's ``max_tokens`` is derived from the fields
it asks for (each text field's share, a few tokens for a score or choice, room for the
keys and punctuation), and a reply cut by it anyway is not lost: its finished fields and
the text field it was cut in are kept (the cut text closed, as the programs close a field
at its budget) and the next request asks only for the fields still missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydantic_core

from icrm_sgl.judges.judge import MAX_FIELD_CHARS
from icrm_sgl.plumbing.defaults import FIELD_TOKENS

if TYPE_CHECKING:
    from icrm_sgl.judges import Judge
    from icrm_sgl.judges.fields import FieldSpec

#: Tokens for a score or a choice value.
VALUE_TOKENS = 8
#: Tokens per character of the keys and punctuation a reply writes around the values
#: (JSON keys tokenize at ~3-4 characters a token; half a token each leaves room for the
#: whitespace a grammar lets a model add).
SKELETON_TOKENS_PER_CHAR = 0.5
#: Characters a text field may hold per token of its budget. English runs at ~4 characters
#: a token, so a field filled to its length usually ends within its tokens; a reply of
#: shorter tokens is cut by ``max_tokens`` and completed by a follow-up.
CHARS_PER_TOKEN = 3
#: The field's programs' default token budget (``ICRM``'s ``field_tokens``).


@dataclass(frozen=True)
class FieldRequest:
    """The fields of one judge that a request asks for, in the verdict's order, with
    ``field_tokens`` for each text field (or the field's own smaller budget, as the
    programs have it)."""

    judge: Judge
    keys: tuple[str, ...]
    field_tokens: int = FIELD_TOKENS

    @classmethod
    def whole(cls, judge: Judge, field_tokens: int = FIELD_TOKENS) -> FieldRequest:
        """Every field of the verdict."""
        return cls(judge, tuple(judge.keys), field_tokens)

    @property
    def specs(self) -> tuple[FieldSpec, ...]:
        """The judge's field specs of ``keys``, in order."""
        return tuple(self.judge.field_named(k) for k in self.keys)

    @property
    def text_keys(self) -> tuple[str, ...]:
        """The free-text fields among ``keys`` (not the score or choice)."""
        return tuple(s.key for s in self.specs if s.kind == "text")

    def missing(self, found: dict[str, Any]) -> FieldRequest:
        """The fields not yet in ``found``."""
        return dataclasses.replace(self, keys=tuple(k for k in self.keys if k not in found))

    def json_schema(self) -> dict[str, Any]:
        """The verdict schema restricted to these fields (strict structured output, tools)."""
        return _restrict(self.judge.json_schema(), self.keys)

    def grammar_schema(self) -> dict[str, Any]:
        """The grammar-friendly schema (scores as an enum, no length bounds) restricted to
        these fields: for servers whose compilers are not bounded (see ``bounded_schema``)."""
        return _restrict(self.judge.grammar_schema(), self.keys)

    def bounded_schema(self) -> dict[str, Any]:
        """``grammar_schema`` with each text field's ``maxLength`` from its token budget:
        for servers that compile the schema (vLLM, sglang)."""
        schema = self.grammar_schema()
        for key, chars in self.max_chars.items():
            schema["properties"][key] = {**schema["properties"][key], "maxLength": chars}
        return schema

    @property
    def text_tokens(self) -> dict[str, int]:
        """Each text field's token budget: ``field_tokens``, or the field's own when smaller."""
        return {
            s.key: min(self.field_tokens, s.max_tokens or self.field_tokens)
            for s in self.specs
            if s.kind == "text"
        }

    @property
    def max_chars(self) -> dict[str, int]:
        """Each text field's length bound in characters (never above the model's own)."""
        props = self.judge.json_schema()["properties"]
        return {
            key: min(tokens * CHARS_PER_TOKEN, props[key].get("maxLength", MAX_FIELD_CHARS))
            for key, tokens in self.text_tokens.items()
        }

    @property
    def max_tokens(self) -> int:
        """``max_tokens`` for a reply holding these fields: each text field's budget,
        ``VALUE_TOKENS`` per other value, and room for the keys and punctuation."""
        n_values = len(self.keys) - len(self.text_keys)
        skeleton = len(json.dumps(dict.fromkeys(self.keys, ""), indent=1))
        values = sum(self.text_tokens.values()) + VALUE_TOKENS * n_values
        return values + math.ceil(skeleton * SKELETON_TOKENS_PER_CHAR)


def _restrict(schema: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    props = schema["properties"]
    return {**schema, "properties": {k: props[k] for k in keys}, "required": list(keys)}


class Unreadable(ValueError):
    """A reply that is not a JSON object (or a prefix of one, when it was cut)."""


def escape_controls(text: str) -> str:
    """``text`` with each raw control character inside a JSON string escaped (JSON forbids
    them there; outside strings they are whitespace or an error either way)."""
    out, in_string, escaped = [], False, False
    for char in text:
        if escaped:
            escaped = False
        elif in_string and char == "\\":
            escaped = True
        elif char == '"':
            in_string = not in_string
        elif in_string and ord(char) < 32:
            char = json.dumps(char)[1:-1]
        out.append(char)
    return "".join(out)


def read_fields(text: str, cut: bool, request: FieldRequest) -> dict[str, Any]:
    """The asked-for fields a reply holds (and any unknown key, for validation to refuse).
    A whole reply must be one JSON object; a raw control character in a string is escaped
    first. A reply cut by its budget keeps its finished fields and the text field it was
    cut in; a score or choice the cut reached is kept only when its text shows it whole
    (``7``, ``"A+"``, not ``1`` of 10 or ``"A+`` of A++)."""
    text = escape_controls(text)
    try:
        data = pydantic_core.from_json(text, allow_partial="trailing-strings" if cut else False)
    except ValueError as exc:
        raise Unreadable(f"Invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Unreadable(f"expected a JSON object, got {type(data).__name__}")
    if cut and data:
        last = next(reversed(data))
        if last not in request.text_keys and not _ends_whole(text, last, data[last], request):
            del data[last]
    known = request.judge.keys
    # Fields asked for earlier are not taken again; unknown keys stay, for validation to name.
    return {k: v for k, v in data.items() if k in request.keys or k not in known}


def _ends_whole(text: str, key: str, value: Any, request: FieldRequest) -> bool:
    """Whether the last value of a cut reply is written out whole: followed by what ends
    it, or at the very end with no other allowed value that continues it."""
    if key not in request.keys:
        return False
    starts = list(re.finditer(re.escape(json.dumps(key)) + r"\s*:\s*", text))
    spelled = json.dumps(value, ensure_ascii=False)
    rest = text[starts[-1].end() :] if starts else ""
    if not rest.startswith(spelled):
        return False
    after = rest[len(spelled) :]
    if after:  # what follows ends the value (whitespace too), or shows it was not this
        return after.strip()[:1] in ("", ",", "}")
    spec = request.judge.field_named(key)
    quote = '"' if spec.quoted else ""
    return not any(
        (quote + v + quote).startswith(spelled) and quote + v + quote != spelled
        for v in spec.values
    )
