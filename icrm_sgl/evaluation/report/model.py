"""The data the page embeds (as JSON): the single source of truth for what it shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Verdict(BaseModel):
    """One verdict of an example (an order, a reply or a panel member's): the judge's
    fields in the judge's order (none where the record holds no whole verdict), what the
    record keeps beside them (choice, score, reward, error), and its label probabilities."""

    title: str
    fields: list[tuple[str, Any]]
    record: dict[str, Any]
    probabilities: dict[str, float] | None = None


class Example(BaseModel):
    """One judged example: the table's row and what a click on it opens."""

    id: str
    subset: str
    label: str
    decisions: dict[str, str]
    flipped: bool | None
    confidence: float | None
    correct: bool | None
    failed: bool
    margin: float | None
    verdicts: list[Verdict]
    inputs: dict[str, Any] | None
    record: dict[str, Any]


class Run(BaseModel):
    """One eval folder: its settings, its metrics (or why there are none), and examples."""

    title: str
    status: str
    settings: dict[str, Any]
    metrics: dict[str, Any] | None
    note: str | None = None
    examples: list[Example]


class Change(BaseModel):
    """One example of two runs: each run's decisions and correctness."""

    id: str
    subset: str
    decisions: list[dict[str, str]]
    correct: list[bool | None]
    changed: bool


class Page(BaseModel):
    """What ``report.html`` shows: one run, or two runs of one set and what changed."""

    runs: list[Run]
    changes: list[Change] | None = None
