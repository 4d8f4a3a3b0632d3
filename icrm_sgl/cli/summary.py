"""Wording shared by the commands' summary lines."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 verdict``, ``2 verdicts``: the count and the noun that agrees with it."""
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"
