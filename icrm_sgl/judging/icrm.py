"""The ICRM facade: the original IC-RM constructor and call style on sglang programs."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, cast

from tqdm import tqdm

from icrm_sgl.engines.identity import engine_identity
from icrm_sgl.engines.protocol import Engine, HostedJudge, check_engine
from icrm_sgl.errors import EngineError, InputError, VerdictError
from icrm_sgl.judges import Judge
from icrm_sgl.judges.shots import Shot
from icrm_sgl.judges.template import Template
from icrm_sgl.judging.pair_judging import PairJudgement, judge_pair
from icrm_sgl.judging.ranking import WINS, Ranking, rank
from icrm_sgl.judging.settings import CacheSettings, EngineSettings, JudgingSettings, Settings
from icrm_sgl.plumbing.arguments import check_example, check_examples, check_generation
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.programs.judge import PROGRAM_VERSION
from icrm_sgl.runners import (
    Batch,
    HostedRunner,
    ProgramRunner,
    RunContext,
    Runner,
    cache_key,
    run_cached,
)

_G = TypeVar("_G", EngineSettings, JudgingSettings, CacheSettings)

#: The settings' defaults, which the constructor's keywords show.
_DEFAULTS = Settings()

#: Accepted for compatibility with the original IC-RM and ignored: programs stop themselves.
_IGNORED_KEYWORDS = {"stop"}


class ICRM:
    """An in-context reward model: judge conversations with few-shot sglang programs.

    ``model(conversation=...)`` (individual) or ``model(conversation_A=...,
    conversation_B=...)`` (pairwise) returns the verdict as a JSON string, or a dict
    with ``parse_json=True``; ``judge_batch`` runs many examples with ``run_batch``.
    ``judge=`` takes your own judge instead of a built-in mode: a ``Judge``
    (``icrm_sgl.judges.make_judge``) or a TOML rubric file's path. ``from_settings``
    takes the settings as groups (``icrm_sgl.judging.settings``), as the constructor makes them.
    """

    def __init__(
        self,
        model_name: str | None = None,
        rm_type: str | None = None,
        engine: str = _DEFAULTS.engine.name,
        shots_pool_path: str | None = None,
        num_shots: int = _DEFAULTS.judging.num_shots,
        shot_sampling_mode: str = _DEFAULTS.judging.shot_sampling_mode,
        completion: bool | None = None,
        template_path: str | None = None,
        shot_template_path: str | None = None,
        verbose: bool = _DEFAULTS.judging.verbose,
        seed: int | None = _DEFAULTS.judging.seed,
        field_tokens: int = _DEFAULTS.judging.field_tokens,
        concurrency: int | None = None,
        backend: Engine | None = None,
        *,
        feedback_template_path: str | None = None,
        use_cache: bool = _DEFAULTS.cache.use_cache,
        overwrite_cache: bool = _DEFAULTS.cache.overwrite_cache,
        cache_dir: str | None = None,
        num_workers: int | None = None,
        num_gpu_per_worker: int | None = None,
        dtype: str | None = None,
        quantization: str | None = None,
        judge: Judge | str | None = None,
        **engine_options: Any,
    ) -> None:
        """The original IC-RM's flat keywords (and a few more), sorted into the three
        groups of ``from_settings``, with their defaults; a keyword no group has is an
        engine option."""
        flat = dict(locals())  # the parameters: nothing else is bound yet
        for own in ("self", "backend", "engine_options"):
            del flat[own]
        self._open(Settings.from_flat({**flat, **engine_options}), backend)

    @classmethod
    def from_settings(
        cls,
        engine: EngineSettings | None = None,
        judging: JudgingSettings | None = None,
        cache: CacheSettings | None = None,
        backend: Engine | None = None,
    ) -> ICRM:
        """An ``ICRM`` from its settings groups (each defaults to its defaults); with
        ``backend``, on that engine instead of one built from ``engine``."""
        given = Settings(
            _group("engine", engine, EngineSettings),
            _group("judging", judging, JudgingSettings),
            _group("cache", cache, CacheSettings),
        )
        model = cls.__new__(cls)
        model._open(given, backend)
        return model

    def _open(self, settings: Settings, backend: Engine | None) -> None:
        """The judge and its shots, then the cache (a bad folder fails before a model
        loads), then the engine and the runner."""
        self.settings = settings
        self.definition = settings.judging.definition()
        self.rm_type = self.definition.name
        self.engine = settings.engine.name
        self.shots_pool = list(self.definition.shots_pool)
        self.default_shots = settings.judging.default_shots(self.definition)
        self.cache = settings.cache.open()
        self._closed = False
        self._owns_backend = backend is None
        self._attach(backend)
        self._runner = self._make_runner()

    def _attach(self, backend: Engine | None) -> None:
        """Take the given engine, or build one from the engine settings, and check it;
        what was opened so far is closed when that fails."""
        try:
            self.backend: Engine = backend or self.settings.engine.build()
        except BaseException:
            self._owns_backend = False
            self.close()
            raise
        try:
            self._check_engine(self.settings.judging.completion)
        except InputError:
            self.close()
            raise

    def _check_engine(self, completion: bool | None) -> None:
        """The engine's own declarations decide: the prompt mode, and chat only with a
        known chat template."""
        check_engine(self.engine, self.backend)
        self.capabilities = self.backend.capabilities
        self.completion = self.capabilities.resolve_mode(self.engine, completion)
        self.model_name = self.backend.get_model_name()
        if not self.completion and not self.backend.chat_template_known:
            raise InputError(
                f"engine {self.engine!r}: cannot tell the chat template of {self.model_name!r}; "
                "pass chat_template=NAME (-E chat_template=NAME), e.g. chatml or llama-3-instruct"
            )

    def _make_runner(self) -> Runner:
        context = RunContext(
            engine=self.engine,
            model=self.model_name,
            judge=self.definition,
            completion=self.completion,
            concurrency=self.settings.judging.concurrency,
            batch_threads=self.backend.batch_threads,
        )
        if self.capabilities.programs:
            return ProgramRunner(self.backend, context)
        # check_engine refused an engine that runs no programs and has no judge().
        return HostedRunner(cast(HostedJudge, self.backend), context)

    # -- shots, prompts and keys ---------------------------------------------------------

    def sample_shots(self, num_shots: int, mode: str | None = None) -> list[Shot]:
        """Shots from the pool: ``fixed`` (first n) or ``random`` (seeded by ``seed``)."""
        return self.settings.judging.shots(self.definition, num_shots, mode)

    def render_prompt(self, example: Mapping[str, Any], shots: Sequence[Shot] | None = None) -> str:
        """The prompt text up to where the verdict JSON starts (completion layout)."""
        prompt = self.definition.prompt(self.default_shots if shots is None else shots)
        return prompt.render(self.definition.example_fields(example))

    def fingerprint(self, **gen: Any) -> dict[str, Any]:
        """Everything that changes a verdict, for cache keys and resume checks: the
        engine's identity and resolved options, prompt, shots, sampling and seed."""
        params, field_tokens = self._generation(gen)
        prompt = self.definition.prompt(self.default_shots)
        return self._fingerprint(prompt, self.default_shots, params, field_tokens)

    def _fingerprint(
        self, prompt: Template, shots: Sequence[Shot], params: dict[str, Any], field_tokens: int
    ) -> dict[str, Any]:
        text = json.dumps([str(seg) for seg in prompt.segments] + [str(self.definition.shot)])
        return {
            "engine": self.engine,
            "engine_identity": engine_identity(self.backend),
            "model": self.model_name,
            "rm_type": self.rm_type,
            "judge": self.definition.fingerprint(),
            "program_version": PROGRAM_VERSION,
            "prompt_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "shots": [s.get("id") for s in shots],
            "completion": self.completion,
            "sampling": {**params, "field_tokens": field_tokens},
            "seed": self.settings.judging.seed,
        }

    def _cache_identity(
        self, prompt: Template, shots: Sequence[Shot], params: dict[str, Any], field_tokens: int
    ) -> str:
        """The judging identity the verdict cache keys on, with the example's fields."""
        return json.dumps(self._fingerprint(prompt, shots, params, field_tokens), sort_keys=True)

    def cache_key(self, example: Mapping[str, Any], **gen: Any) -> str:
        """The verdict cache's key for ``example`` judged with the default shots and ``gen``."""
        params, field_tokens = self._generation(gen)
        prompt = self.definition.prompt(self.default_shots)
        identity = self._cache_identity(prompt, self.default_shots, params, field_tokens)
        return cache_key(identity, self.definition.example_fields(example))

    def _generation(self, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        params = check_generation(kwargs, ignored=_IGNORED_KEYWORDS)
        self.capabilities.check_sampling(self.engine, params)
        max_tokens = params.pop("max_tokens")
        n_text = max(1, len(self.definition.text_fields))
        field_tokens = self.settings.judging.field_tokens
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
        given = {
            "conversation": conversation,
            "conversation_A": conversation_A,
            "conversation_B": conversation_B,
        }
        example = {key: value for key, value in given.items() if value is not None}
        verdict = self.judge(example, shots=shots, **generation_kwargs).verdict
        assert verdict is not None  # judge() raises when there is no verdict
        return verdict if parse_json else json.dumps(verdict, indent=4)

    def judge(
        self, example: Mapping[str, Any], shots: Sequence[Shot] | None = None, **gen: Any
    ) -> Judgement:
        """Judge one example; raises ``InputError`` or ``VerdictError`` instead of failing soft."""
        self._check_open()
        self._generation(gen)
        check_example(example)
        self.definition.example_fields(example, f"example {example.get('id', 0)}")
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
        others run. Each example's id is its ``id`` key, else its position. With
        ``use_cache``, cached verdicts come first. Arguments are checked at the call, not
        when the results are first read.
        """
        self._check_open()
        self._generation(gen)
        return self._judge_batch(check_examples(examples), shots, progress, num_threads, gen)

    def _judge_batch(
        self,
        examples: Iterable[Mapping[str, Any]],
        shots: Sequence[Shot] | None,
        progress: bool,
        num_threads: int | str | None,
        gen: dict[str, Any],
    ) -> Iterator[Judgement]:
        params, field_tokens = self._generation(gen)
        shots = self.default_shots if shots is None else list(shots)
        prompt = self.definition.prompt(shots)
        failures, ids, arguments = self._prepare(examples, prompt)
        yield from failures
        if not arguments:
            return
        batch = Batch(
            ids, arguments, shots, prompt, num_threads, params, field_tokens, gen.get("max_tokens")
        )
        run = self._runner.run
        if self.cache is not None:
            identity = self._cache_identity(prompt, shots, params, field_tokens)
            run = partial(
                run_cached,
                self._runner,
                self.cache,
                identity,
                self._validate_cached,
                overwrite=self.settings.cache.overwrite_cache,
            )
        bar = tqdm(total=len(ids), disable=not progress, file=sys.stderr, unit="verdict")
        shot_ids = [s.get("id") for s in shots]
        finished = False
        try:
            for result in run(batch):
                result.meta["shots"] = shot_ids
                bar.update()
                yield result
            finished = True
        finally:
            bar.leave = finished  # a stopped batch clears its bar: the caller's summary is last
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

    @property
    def judges(self) -> tuple[Judge, ...]:
        """This model's one judge (a panel has one per member)."""
        return (self.definition,)

    def ranking_row(self, result: Judgement) -> tuple[dict[str, Any], tuple[float, float]]:
        """A judged reply's row for ``rank``: the field the reward names and the reward
        under its key; ordered by the reward, then the greedy reward."""
        verdict = result.verdict or {}
        judge = self.definition
        named = {} if judge.reward is None else {judge.reward: verdict[judge.reward]}
        value = judge.reward_value(verdict, result.meta)
        row = {**named, judge.reward_key: value, "verdict": verdict}
        return row, (value, judge.reward_value(verdict, {}))

    def ranking_comparison(
        self, build: Callable[[Judge], Mapping[str, Any]], **gen: Any
    ) -> dict[str, Any]:
        """One comparison for ``rank`` in both orders: its reconciled numbers."""
        found = judge_pair(self, build(self.definition), True, **gen).result()
        return {key: found[key] for key in (WINS, "expected_margin", "flipped")}

    def _validate_cached(self, verdict: Any) -> dict[str, Any]:
        """A cached verdict checked like a fresh one (raises on an invalid entry)."""
        return self.definition.public(self.definition.validate(verdict))

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
                fields = self.definition.example_fields(example, f"example {ex_id}")
            except InputError as exc:
                failures.append(Judgement(ex_id, error=str(exc), meta={"stage": "input"}))
                continue
            ids.append(ex_id)
            arguments.append(fields)
            if self.settings.judging.verbose:
                print(prompt.render(fields), file=sys.stderr)
        return failures, ids, arguments

    def close(self) -> None:
        """Release the engine (frees the local model, stops a launched server) and the
        cache; calls after this raise ``EngineError``. Closing twice is harmless."""
        if self._owns_backend and not self._closed:
            self.backend.shutdown()
        if self.cache is not None and not self._closed:
            self.cache.close()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError("this ICRM is closed; create a new one to judge again")

    def __enter__(self) -> ICRM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _group(name: str, value: Any, kind: type[_G]) -> _G:
    """``from_settings``'s ``name`` group: an instance of ``kind``, or its defaults."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InputError(
            f"{name} must be an icrm_sgl.judging.settings.{kind.__name__} (or None), got "
            f"{type(value).__name__}; {kind.__name__}(**values) builds one"
        )
    return value
