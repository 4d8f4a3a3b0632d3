"""The hosted path: one API call (plus re-asks) per example, in completion order."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from pydantic import ValidationError

from icrm_sgl.engines.protocol import HostedJudge
from icrm_sgl.errors import EngineError, VerdictError
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.runners.base import Batch, RunContext
from icrm_sgl.runners.threads import completed


class HostedRunner:
    """Runs a batch as concurrent whole-verdict requests on a hosted engine."""

    def __init__(self, engine: HostedJudge, context: RunContext) -> None:
        self.engine = engine
        self.context = context

    def run(self, batch: Batch) -> Iterator[Judgement]:
        """Results as they complete; engine and verdict failures are per example, any
        other exception propagates."""
        # The text fields' budget as the programs have it: ``field_tokens`` per field.
        n_text = max(1, len(self.context.judge.text_fields))
        gen = {**batch.params, "max_tokens": batch.field_tokens * n_text}
        calls: list[Callable[[], Judgement]] = [
            partial(self._judge, ex_id, batch.prompt.render(fields), gen)
            for ex_id, fields in zip(batch.ids, batch.arguments, strict=True)
        ]
        # A consumer that stops early (or Ctrl-C) leaves no request queued, and none that
        # is in flight holds up the process's exit.
        yield from completed(calls, self.context.threads(batch.num_threads))

    def _judge(self, ex_id: str, prompt: str, gen: dict[str, Any]) -> Judgement:
        meta = self.context.meta()
        started = time.perf_counter()
        try:
            verdict, info = self.engine.judge(
                prompt, self.context.judge, self.context.completion, gen
            )
        except VerdictError as exc:
            meta.update(seconds=round(time.perf_counter() - started, 3), retries=exc.attempts - 1)
            return Judgement(ex_id, error=f"verdict error: {exc}", meta=meta)
        except EngineError as exc:
            meta["seconds"] = round(time.perf_counter() - started, 3)
            return Judgement(ex_id, error=f"engine error: {exc}", meta=meta)
        meta.update(info)
        try:  # an engine registered by a third party may not validate its own verdicts
            checked = self.context.judge.public(self.context.judge.validate(verdict))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "the verdict"
            problem = f"{self.context.engine} returned an invalid verdict: {where}: {first['msg']}"
            return Judgement(ex_id, error=f"verdict error: {problem}", meta=meta)
        meta.update(self.context.judge.reward_meta(checked, meta))  # no probabilities
        return Judgement(ex_id, verdict=checked, meta=meta)
