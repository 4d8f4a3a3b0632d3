"""The ICRM facade: the original IC-RM constructor and call style on sglang programs."""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sglang.lang.backend.base_backend import BaseBackend
from sglang.lang.ir import SglFunction
from tqdm import tqdm

from icrm_sgl.engines import create_engine
from icrm_sgl.engines.hosted import HostedEngine
from icrm_sgl.errors import EngineError, InputError, VerdictError
from icrm_sgl.expectation import expectations
from icrm_sgl.judgement import Judgement
from icrm_sgl.pair_judging import PairJudgement, judge_pair
from icrm_sgl.programs.judge import (
    FINAL_FIELDS,
    PROGRAM_VERSION,
    ProgramConfig,
    build_program,
    var_name,
)
from icrm_sgl.programs.prompts import PromptTemplates, example_fields
from icrm_sgl.programs.template import Template
from icrm_sgl.ranking import Ranking, rank
from icrm_sgl.schemas import public_keys, validate_verdict, verdict_model
from icrm_sgl.shots import Shot, load_shots, sample_shots

#: Generation keywords accepted by calls, with their defaults (greedy decoding).
GENERATION_DEFAULTS: dict[str, Any] = {
    "max_tokens": None,
    "temperature": 0.0,
    "top_p": 1.0,
    "top_k": -1,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
}
#: Accepted for compatibility with the original IC-RM and ignored: programs stop themselves.
_IGNORED_KEYWORDS = {"stop"}

# sglang's executor warns with a full traceback when a program fails; icrm-sgl reports
# the same failure as a one-line error in the example's result instead.
warnings.filterwarnings("ignore", message="Error in stream_executor", category=UserWarning)


@dataclass(frozen=True)
class _Batch:
    """The validated examples of one ``judge_batch`` call and how to judge them."""

    ids: list[str]
    arguments: list[dict[str, str]]
    shots: list[Shot]
    num_threads: int | str | None
    params: dict[str, Any]
    field_tokens: int
    max_tokens: int | None


class ICRM:
    """An in-context reward model: judge conversations with few-shot sglang programs.

    ``model(conversation=...)`` (individual) or ``model(conversation_A=...,
    conversation_B=...)`` (pairwise) returns the verdict as a JSON string, or a dict
    with ``parse_json=True``; ``judge_batch`` runs many examples with ``run_batch``.
    """

    def __init__(
        self,
        model_name: str | None = None,
        rm_type: str = "individual",
        engine: str = "local",
        shots_pool_path: str | None = None,
        num_shots: int = 3,
        shot_sampling_mode: str = "fixed",
        completion: bool = True,
        template_path: str | None = None,
        shot_template_path: str | None = None,
        verbose: bool = False,
        seed: int = 42,
        field_tokens: int = 128,
        concurrency: int | None = None,
        backend: BaseBackend | None = None,
        **engine_options: Any,
    ) -> None:
        verdict_model(rm_type)
        self.rm_type = rm_type
        self.engine = engine
        self.num_shots = num_shots
        self.shot_sampling_mode = shot_sampling_mode
        self.completion = completion
        self.verbose = verbose
        self.seed = seed
        self.field_tokens = field_tokens
        self.concurrency = concurrency
        self.shots_pool = load_shots(rm_type, shots_pool_path)
        self.templates = PromptTemplates.load(rm_type, template_path, shot_template_path)
        self.default_shots = self.sample_shots(num_shots)
        self._programs: dict[tuple, tuple[ProgramConfig, SglFunction]] = {}
        self.engine_options = engine_options
        self._owns_backend = backend is None
        self.backend = backend or create_engine(
            engine, model_name=model_name, seed=seed, **engine_options
        )
        self.model_name = self.backend.get_model_name()

    # -- shots and programs --------------------------------------------------------------

    def sample_shots(self, num_shots: int, mode: str | None = None) -> list[Shot]:
        """Shots from the pool: ``fixed`` (first n) or ``random`` (seeded by ``seed``)."""
        return sample_shots(self.shots_pool, num_shots, mode or self.shot_sampling_mode, self.seed)

    def _program(
        self, shots: Sequence[Mapping[str, Any]], sample_final: bool, field_tokens: int
    ) -> tuple[ProgramConfig, SglFunction]:
        key = (json.dumps(list(shots), sort_keys=True), sample_final, field_tokens)
        if key not in self._programs:
            config = ProgramConfig(
                rm_type=self.rm_type,
                prompt=self.templates.with_shots(shots),
                completion=self.completion,
                field_tokens=field_tokens,
                sample_final=sample_final,
            )
            self._programs[key] = (config, build_program(config))
        return self._programs[key]

    def render_prompt(self, example: Mapping[str, Any], shots: Sequence[Shot] | None = None) -> str:
        """The prompt text up to where the verdict JSON starts (completion layout)."""
        prompt = self.templates.with_shots(self.default_shots if shots is None else shots)
        return prompt.render(example_fields(self.rm_type, example))

    def fingerprint(self, **gen: Any) -> dict[str, Any]:
        """Everything that changes a verdict, for cache keys and resume checks."""
        params, field_tokens = self._generation(gen)
        prompt = self.templates.with_shots(self.default_shots)
        text = json.dumps([str(seg) for seg in prompt.segments] + [str(self.templates.shot)])
        return {
            "engine": self.engine,
            "engine_options": {k: str(v) for k, v in sorted(self.engine_options.items())},
            "model": self.model_name,
            "rm_type": self.rm_type,
            "program_version": PROGRAM_VERSION,
            "prompt_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "shots": [s.get("id") for s in self.default_shots],
            "completion": self.completion,
            "sampling": {**params, "field_tokens": field_tokens},
            "seed": self.seed,
        }

    def _generation(self, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        unknown = set(kwargs) - set(GENERATION_DEFAULTS) - _IGNORED_KEYWORDS
        if unknown:
            raise InputError(
                f"unknown generation option(s) {sorted(unknown)}; "
                f"accepted: {sorted(GENERATION_DEFAULTS)}"
            )
        params = {k: kwargs.get(k, v) for k, v in GENERATION_DEFAULTS.items()}
        max_tokens = params.pop("max_tokens")
        n_text = len(public_keys(self.rm_type)) - 1
        field_tokens = self.field_tokens
        if max_tokens is not None:
            if max_tokens < n_text:
                raise InputError(f"max_tokens must be at least {n_text}, got {max_tokens}")
            field_tokens = min(field_tokens, max_tokens // n_text)
        return params, field_tokens

    # -- judging -------------------------------------------------------------------------

    def __call__(
        self,
        conversation: list[dict[str, str]] | None = None,
        conversation_A: list[dict[str, str]] | None = None,
        conversation_B: list[dict[str, str]] | None = None,
        shots: Sequence[Shot] | None = None,
        parse_json: bool = False,
        **generation_kwargs: Any,
    ) -> str | dict[str, Any]:
        """Judge one example; the verdict as indented JSON text, or a dict."""
        if self.rm_type == "individual":
            example = {"conversation": conversation}
        else:
            example = {"conversation_A": conversation_A, "conversation_B": conversation_B}
        result = self.judge(example, shots=shots, **generation_kwargs)
        return result.verdict if parse_json else json.dumps(result.verdict, indent=4)

    def judge(
        self, example: Mapping[str, Any], shots: Sequence[Shot] | None = None, **gen: Any
    ) -> Judgement:
        """Judge one example; raises ``InputError`` or ``VerdictError`` instead of failing soft."""
        self._generation(gen)
        example_fields(self.rm_type, example, f"example {example.get('id', 0)}")
        (result,) = self.judge_batch([example], shots=shots, **gen)
        if not result.ok:
            raise VerdictError(f"example {result.id}: {result.error}")
        return result

    def judge_batch(
        self,
        examples: Iterable[Mapping[str, Any]],
        shots: Sequence[Shot] | None = None,
        progress: bool = False,
        num_threads: int | str | None = None,
        **gen: Any,
    ) -> Iterator[Judgement]:
        """Judge many examples: sglang's ``run_batch`` (results in input order) or, on a
        hosted engine, concurrent API calls (results in completion order).

        Malformed examples are yielded first as failed ``Judgement``s and skipped; the
        others run. Each example's id is its ``id`` key, else its position.
        """
        params, field_tokens = self._generation(gen)
        shots = self.default_shots if shots is None else list(shots)
        prompt = self.templates.with_shots(shots)
        failures, ids, arguments = self._prepare(examples, prompt)
        yield from failures
        if not arguments:
            return
        batch = _Batch(
            ids, arguments, shots, num_threads, params, field_tokens, gen.get("max_tokens")
        )
        run = self._run_hosted if isinstance(self.backend, HostedEngine) else self._run_programs
        bar = tqdm(total=len(ids), disable=not progress, file=sys.stderr, unit="verdict")
        shot_ids = [s.get("id") for s in shots]
        for result in run(batch):
            result.meta["shots"] = shot_ids
            bar.update()
            yield result
        bar.close()

    def judge_pair(
        self,
        conversation_A: list[dict[str, str]],
        conversation_B: list[dict[str, str]],
        both_orders: bool = False,
        shots: Sequence[Shot] | None = None,
        **gen: Any,
    ) -> PairJudgement:
        """Compare two conversations; with ``both_orders`` judge A/B then B/A and reconcile:
        P(A better), the debiased expected margin, both verdicts, whether the choice flipped."""
        example = {"conversation_A": conversation_A, "conversation_B": conversation_B}
        return judge_pair(self, example, both_orders, shots, **gen)

    def rank(
        self,
        responses: Sequence[str],
        prompt: str | None = None,
        conversation: list[dict[str, str]] | None = None,
        where: str = "rank",
        **gen: Any,
    ) -> Ranking:
        """Order replies to one prompt, best first: by expected score (individual model) or
        by binary-insertion sorting on both-order comparisons (pairwise model)."""
        return rank(self, responses, prompt, conversation, where, **gen)

    def _prepare(
        self, examples: Iterable[Mapping[str, Any]], prompt: Template
    ) -> tuple[list[Judgement], list[str], list[dict[str, str]]]:
        """Validate every example: failures for the malformed, ids and fields for the rest."""
        failures, ids, arguments = [], [], []
        for i, example in enumerate(examples):
            ex_id = str(example.get("id", i)) if isinstance(example, Mapping) else str(i)
            try:
                if not isinstance(example, Mapping):
                    raise InputError(f"example {ex_id}: expected an object")
                fields = example_fields(self.rm_type, example, f"example {ex_id}")
            except InputError as exc:
                failures.append(Judgement(ex_id, error=str(exc), meta={"stage": "input"}))
                continue
            ids.append(ex_id)
            arguments.append(fields)
            if self.verbose:
                print(prompt.render(fields), file=sys.stderr)
        return failures, ids, arguments

    def _run_programs(self, batch: _Batch) -> Iterator[Judgement]:
        """The sglang path: ``run_batch`` over the judging program, in input order."""
        sample_final = batch.params["temperature"] > 1e-5
        config, program = self._program(batch.shots, sample_final, batch.field_tokens)
        states = program.run_batch(
            batch.arguments,
            backend=self.backend,
            num_threads=batch.num_threads
            or self.concurrency
            or getattr(self.backend, "batch_threads", "auto"),
            generator_style=True,
            max_new_tokens=batch.field_tokens,
            **batch.params,
        )
        started = time.perf_counter()
        for ex_id, state in zip(batch.ids, states, strict=True):
            now = time.perf_counter()
            yield self._collect(ex_id, state, config, now - started)
            started = now

    def _run_hosted(self, batch: _Batch) -> Iterator[Judgement]:
        """The hosted path: one API call (plus re-asks) per example, in completion order."""
        prompt = self.templates.with_shots(batch.shots)
        gen = {**batch.params, "max_tokens": batch.max_tokens}
        threads = None if batch.num_threads == "auto" else batch.num_threads
        workers = int(threads or self.concurrency or self.backend.batch_threads)
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = [
                pool.submit(self._judge_hosted, ex_id, prompt.render(fields), gen)
                for ex_id, fields in zip(batch.ids, batch.arguments, strict=True)
            ]
            for future in as_completed(futures):
                yield future.result()
        finally:  # a consumer that stops early (or Ctrl-C) leaves no requests queued
            pool.shutdown(cancel_futures=True)

    def _judge_hosted(self, ex_id: str, prompt: str, gen: dict[str, Any]) -> Judgement:
        meta: dict[str, Any] = {
            "engine": self.engine,
            "model": self.model_name,
            "rm_type": self.rm_type,
            "program_version": PROGRAM_VERSION,
        }
        started = time.perf_counter()
        try:
            verdict, info = self.backend.judge(prompt, self.rm_type, self.completion, gen)
        except VerdictError as exc:
            meta.update(seconds=round(time.perf_counter() - started, 3), retries=exc.attempts - 1)
            return Judgement(ex_id, error=f"verdict error: {exc}", meta=meta)
        except EngineError as exc:
            meta["seconds"] = round(time.perf_counter() - started, 3)
            return Judgement(ex_id, error=f"engine error: {exc}", meta=meta)
        meta.update(info)
        return Judgement(ex_id, verdict=verdict, meta=meta)

    def _collect(self, ex_id: str, state: Any, config: ProgramConfig, seconds: float) -> Judgement:
        meta: dict[str, Any] = {
            "engine": self.engine,
            "model": self.model_name,
            "rm_type": self.rm_type,
            "program_version": PROGRAM_VERSION,
            "seconds": round(seconds, 3),
        }
        error = state.error()
        if error is not None:
            kind = "engine" if isinstance(error, EngineError) else type(error).__name__
            return Judgement(ex_id, error=f"{kind} error: {error}", meta=meta)
        meta.update(_accounting(state, config))
        text = state["verdict"]
        try:
            verdict = validate_verdict(self.rm_type, text)
        except ValidationError as exc:
            first = exc.errors()[0]
            return Judgement(ex_id, error=f"invalid verdict: {first['msg']}", meta=meta)
        return Judgement(ex_id, verdict=verdict.to_public(), meta=meta)

    def close(self) -> None:
        """Release the engine (frees the local model, stops a launched server)."""
        if self._owns_backend:
            self.backend.shutdown()

    def __enter__(self) -> ICRM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _accounting(state: Any, config: ProgramConfig) -> dict[str, Any]:
    """Token counts from the per-call meta info: the first call's prompt is the judge prompt."""
    final = FINAL_FIELDS[config.rm_type]
    text_vars = [k for k in public_keys(config.rm_type) if k != final.key]
    metas = [state.get_meta_info(var_name(k)) or {} for k in text_vars]
    final_meta = state.get_meta_info(final.key) or {}
    out: dict[str, Any] = {
        "prompt_tokens": metas[0].get("prompt_tokens"),
        "cached_tokens": metas[0].get("cached_tokens"),
        "completion_tokens": sum(m.get("completion_tokens", 0) for m in metas),
        "truncated": [
            k
            for k, m in zip(text_vars, metas, strict=True)
            if (m.get("finish_reason") or {}).get("type") == "length"
        ],
    }
    if "probabilities" in final_meta:
        out["probabilities"] = {
            choice[: len(choice) - len(final.closer)]: round(p, 6)
            for choice, p in final_meta["probabilities"].items()
        }
        out.update(expectations(config.rm_type, out["probabilities"]))
    return out
