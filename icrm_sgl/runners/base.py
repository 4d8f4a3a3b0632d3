"""The one interface both runners implement, and what a batch carries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from icrm_sgl.judges import Judge
from icrm_sgl.judges.shots import Shot
from icrm_sgl.judges.template import Template
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.programs.judge import PROGRAM_VERSION


@dataclass(frozen=True)
class Batch:
    """The validated examples of one ``judge_batch`` call and how to judge them."""

    ids: list[str]
    arguments: list[dict[str, str]]
    shots: list[Shot]
    prompt: Template
    num_threads: int | str | None
    params: dict[str, Any]
    field_tokens: int
    max_tokens: int | None

    def subset(self, positions: list[int]) -> Batch:
        """The examples at ``positions``, renamed to their positions (ids may repeat)."""
        return replace(
            self,
            ids=[str(i) for i in positions],
            arguments=[self.arguments[i] for i in positions],
        )


@dataclass(frozen=True)
class RunContext:
    """What every judgement's meta names, and the defaults a runner needs."""

    engine: str
    model: str
    judge: Judge
    completion: bool
    concurrency: int | None
    batch_threads: int

    def meta(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "model": self.model,
            "rm_type": self.judge.name,
            "program_version": PROGRAM_VERSION,
            "judge": self.judge.fingerprint()[:16],
        }

    def threads(self, requested: int | str | None) -> int:
        """Examples in flight: the call's ``num_threads``, else ``concurrency``, else the
        engine's default."""
        if requested == "auto":
            requested = None
        return int(requested or self.concurrency or self.batch_threads)


class Runner(Protocol):
    """Judges a batch; results carry the batch's ids (in any order)."""

    def run(self, batch: Batch) -> Iterator[Judgement]: ...
