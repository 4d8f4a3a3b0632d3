"""The outcome of judging one example: a validated verdict or a counted failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Judgement:
    """One example's result; exactly one of ``verdict`` and ``error`` is set."""

    id: str
    verdict: dict[str, Any] | None = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict is not None

    def record(self) -> dict[str, Any]:
        """The JSONL record: id, verdict (or error) and meta."""
        out: dict[str, Any] = {"id": self.id}
        if self.ok:
            out["verdict"] = self.verdict
        else:
            out["error"] = self.error
        out["meta"] = self.meta
        return out
