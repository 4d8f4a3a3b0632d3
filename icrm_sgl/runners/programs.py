"""The sglang path: ``run_batch`` over the judging program, results in input order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from sglang.lang.backend.base_backend import BaseBackend
from sglang.lang.ir import SglFunction

from icrm_sgl.engines.sglang.frontend import program_errors_quiet
from icrm_sgl.errors import EngineError, IcrmError
from icrm_sgl.judges.template import Template
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.programs.judge import (
    ProgramConfig,
    build_program,
    verdict_accounting,
    verdict_text,
)
from icrm_sgl.runners.base import Batch, RunContext


class ProgramRunner:
    """Runs a batch as sglang programs on a program engine, one program per shot set."""

    def __init__(self, backend: BaseBackend, context: RunContext) -> None:
        self.backend = backend
        self.context = context
        self._programs: dict[tuple, tuple[ProgramConfig, SglFunction]] = {}

    def program(
        self,
        shots: Sequence[Mapping[str, Any]],
        prompt: Template,
        sample_final: bool,
        field_tokens: int,
    ) -> tuple[ProgramConfig, SglFunction]:
        """The judging program for these shots and settings, built once."""
        key = (json.dumps(list(shots), sort_keys=True), sample_final, field_tokens)
        if key not in self._programs:
            config = ProgramConfig(
                judge=self.context.judge,
                prompt=prompt,
                completion=self.context.completion,
                field_tokens=field_tokens,
                sample_final=sample_final,
                layout=self.backend.program_layout,
            )
            self._programs[key] = (config, build_program(config))
        return self._programs[key]

    def run(self, batch: Batch) -> Iterator[Judgement]:
        """Engine failures are per example; any other exception propagates."""
        sample_final = batch.params["temperature"] > 1e-5
        config, program = self.program(batch.shots, batch.prompt, sample_final, batch.field_tokens)
        # the failure of a program is reported once, in the example's result; the filter
        # lives as long as the batch's worker threads do
        with program_errors_quiet():
            states = program.run_batch(
                batch.arguments,
                backend=self.backend,
                num_threads=batch.num_threads
                or self.context.concurrency
                or self.context.batch_threads,
                generator_style=True,
                max_new_tokens=batch.field_tokens,
                **batch.params,
            )
            started = time.perf_counter()
            for ex_id, state in zip(batch.ids, states, strict=True):
                now = time.perf_counter()
                yield self._collect(ex_id, state, config, now - started)
                started = now

    def _collect(self, ex_id: str, state: Any, config: ProgramConfig, seconds: float) -> Judgement:
        meta = {**self.context.meta(), "seconds": round(seconds, 3)}
        error = state.error()
        if error is not None:
            if not isinstance(error, IcrmError):
                raise error
            return Judgement(ex_id, error=f"{_kind(error)} error: {error}", meta=meta)
        meta.update(verdict_accounting(state, config))
        try:
            verdict, cut = config.judge.parse(verdict_text(state))
        except ValidationError as exc:
            first = exc.errors()[0]
            return Judgement(ex_id, error=f"invalid verdict: {first['msg']}", meta=meta)
        meta["truncated"] += [k for k in cut if k not in meta["truncated"]]
        meta.update(config.judge.reward_meta(verdict, meta))  # sampled: the value it names
        return Judgement(ex_id, verdict=verdict, meta=meta)


def _kind(error: IcrmError) -> str:
    return "engine" if isinstance(error, EngineError) else type(error).__name__
