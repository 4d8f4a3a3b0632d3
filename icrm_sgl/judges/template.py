"""Seed-style prompt templates with ``{$key}`` placeholders, split into segments once.

A template is parsed into literal text and placeholders at load time; rendering walks the
segments and inserts each value once, so user text is never scanned for placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from icrm_sgl.errors import InputError
from icrm_sgl.plumbing.files import read_text

_PLACEHOLDER = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)\}")

KNOWN_KEYS = frozenset(
    {
        "shots",
        "history",
        "user_query",
        "model_output",
        "candidate_A",
        "candidate_B",
        "index",
        "feedback",
    }
)


def placeholders(text: str) -> list[str]:
    """The placeholder names of a template text, in order of first use."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(text)))


@dataclass(frozen=True)
class Slot:
    """A placeholder in a template."""

    key: str


Segment = str | Slot


@dataclass(frozen=True)
class Template:
    """Literal text and placeholders, in order."""

    name: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(
        cls, text: str, *, name: str, allowed: frozenset[str], required: frozenset[str]
    ) -> Template:
        """Split ``text`` into segments; unknown or missing keys are an ``InputError``."""
        segments: list[Segment] = []
        pos = 0
        for match in _PLACEHOLDER.finditer(text):
            if match.start() > pos:
                segments.append(text[pos : match.start()])
            segments.append(Slot(match.group(1)))
            pos = match.end()
        if pos < len(text):
            segments.append(text[pos:])
        keys = {s.key for s in segments if isinstance(s, Slot)}
        unknown = keys - allowed
        if unknown:
            raise InputError(
                f"template {name}: unknown placeholder(s) "
                f"{', '.join('{$' + k + '}' for k in sorted(unknown))}; "
                f"allowed here: {', '.join('{$' + k + '}' for k in sorted(allowed))}"
            )
        missing = required - keys
        if missing:
            raise InputError(
                f"template {name}: missing placeholder(s) "
                f"{', '.join('{$' + k + '}' for k in sorted(missing))}"
            )
        return cls(name, tuple(segments))

    @classmethod
    def load(
        cls, path: str | Path, *, allowed: frozenset[str], required: frozenset[str]
    ) -> Template:
        text = read_text(path, "template")
        return cls.parse(text, name=str(path), allowed=allowed, required=required)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(s.key for s in self.segments if isinstance(s, Slot))

    def fill(self, values: Mapping[str, str]) -> Template:
        """Substitute the given keys, keep the others as slots, merge adjacent text."""
        merged: list[Segment] = []
        for seg in self.segments:
            piece: Segment = values[seg.key] if isinstance(seg, Slot) and seg.key in values else seg
            if isinstance(piece, str) and merged and isinstance(merged[-1], str):
                merged[-1] += piece
            elif piece != "":
                merged.append(piece)
        return Template(self.name, tuple(merged))

    def render(self, values: Mapping[str, str]) -> str:
        """Substitute every placeholder in one pass."""
        filled = self.fill(values)
        left = filled.keys
        if left:
            raise KeyError(f"template {self.name}: no value for {sorted(left)}")
        return "".join(s for s in filled.segments if isinstance(s, str))
