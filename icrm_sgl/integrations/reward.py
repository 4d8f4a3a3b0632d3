"""``ICRMReward``: the judge as a reward function ``(prompts, completions, **columns)``, the
form TRL's GRPO, RLOO and online DPO trainers (and most RL libraries) take."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from icrm_sgl.errors import InputError, VerdictError
from icrm_sgl.integrations.convert import (
    Text,
    check_batch,
    column_keys,
    to_conversation,
    to_query,
)
from icrm_sgl.integrations.endpoint import Query, RewardEndpoint
from icrm_sgl.integrations.local import LocalJudging
from icrm_sgl.integrations.outcome import Failure, Outcome
from icrm_sgl.judges import Judge
from icrm_sgl.judges.supply import (
    REWARD_FUNCTION,
    Consumer,
    check_supplied,
    checked,
    one_reply,
)
from icrm_sgl.judging.settings import EndpointSettings
from icrm_sgl.panel.spec import PanelSpec, load_panel
from icrm_sgl.plumbing.judgement import Judgement


@dataclass
class RewardStats:
    """Running totals over every call, for logs and throughput figures."""

    calls: int = 0
    completions: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        """Rewards per second of judging (0 before the first call)."""
        return self.completions / self.seconds if self.seconds else 0.0


class _EndpointJudging:
    """Individual examples sent to a served judge as (prompt, reply) text pairs, each
    with its other keys (dataset columns) as per-query fields."""

    #: The served judge is the server's: it is checked there, each query answered 422.
    judge = None

    def __init__(self, endpoint: RewardEndpoint) -> None:
        self.endpoint = endpoint

    def rewards(self, examples: list[dict[str, Any]]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        queries: dict[int, Query] = {}
        for i, example in enumerate(examples):
            try:
                prompt, reply = to_query(example["conversation"])
            except InputError as exc:
                outcomes[i] = Failure(str(exc), bad_input=True)
                continue
            queries[i] = Query(
                prompt, reply, {k: v for k, v in example.items() if k != "conversation"}
            )
        outcomes.update(zip(queries, self.endpoint.rewards(list(queries.values())), strict=True))
        return [outcomes[i] for i in range(len(examples))]

    def close(self) -> None:
        """Nothing to release: each request has its own connection."""


class _PanelJudging:
    """Examples judged by a panel in this process: the caller's ``Panel``, or one built
    (and closed) here from a panel file, each member's judge accepted before any engine
    loads. Its reward is the panel's (``meta.reward``, 0-1)."""

    def __init__(
        self,
        accept: Callable[[Judge], None],
        panel: Any,
        gen: dict[str, Any] | None,
        options: dict[str, Any],
    ) -> None:
        from icrm_sgl.panel.panel import Panel

        self._owned = not isinstance(panel, Panel)
        spec = panel.spec if isinstance(panel, Panel) else panel
        if not isinstance(spec, PanelSpec):
            spec = load_panel(spec)
        if not self._owned and options:
            raise InputError(
                "ICRMReward(panel=Panel) judges with that panel and its settings; drop "
                f"{', '.join(sorted(options))} (or pass the panel file instead)"
            )
        self.judges: tuple[Judge, ...] = spec.judges
        for judge in self.judges:
            accept(judge)
        self.panel = Panel(spec, **options) if self._owned else panel
        self.gen = dict(gen or {})

    def rewards(self, examples: list[dict[str, Any]]) -> list[Outcome]:
        """Each example's panel reward, in order; a failure where the panel gave none."""
        numbered = [{**example, "id": str(i)} for i, example in enumerate(examples)]
        by_id = {r.id: r for r in self.panel.judge_batch(numbered, **self.gen)}
        return [_panel_outcome(by_id[str(i)]) for i in range(len(examples))]

    def close(self) -> None:
        """Close the panel if it was built here."""
        if self._owned:
            self.panel.close()


def _panel_outcome(result: Judgement) -> Outcome:
    if result.verdict is None:
        return Failure(str(result.error), result.meta.get("stage") == "input")
    return float(result.meta["reward"])


class ICRMReward:
    """Each completion's reward: the judge's reward field (the built-in individual judge's
    score 1-10), or its expected value when the engine reports probabilities; judged in
    this process, or by ``icrm-sgl serve`` at ``endpoint``. ``judge=`` takes your own judge
    of one reply (a rubric path, a ``Judge`` or a built-in name), as ``ICRM(judge=...)``
    does; dataset columns reach it as example keys (``{$reference}``). ``panel=`` takes a
    panel of judges of one reply (a panel file's path, a ``PanelSpec`` or an open
    ``Panel``; ``require_all=True`` and ICRM's judging settings go with a path): each
    completion's reward is the panel's, 0-1.

    A completion that gets no verdict (malformed, or the judge failed on it) is given
    ``failed_reward``: by default ``None``, TRL's "no reward" (GRPO leaves such a completion
    out of its group's baseline and gives it zero advantage), else a finite number.
    ``raise_on_failure=True`` raises instead. An engine that fails as a whole (closed
    model, unreachable server past ``timeout``) raises ``EngineError``.

    With ``endpoint``: ``api_key`` (else ``$ICRM_API_KEY``), ``batch_size`` (queries per
    request, default 32) and ``timeout`` (seconds for the whole call, busy retries and slow
    answers included, default 600); see ``options.EndpointSettings``. Without it,
    ``api_key`` and ``timeout`` are the engine's own options (a hosted engine's key and
    seconds per request, ``ICRMReward(engine="openai", api_key=...)``)."""

    __name__ = "icrm_reward"  # trainers name reward functions in their logs by this
    #: What this reward function supplies a judge (its messages name it).
    consumer: Consumer = REWARD_FUNCTION

    def __init__(
        self,
        model: Any = None,
        gen: dict[str, Any] | None = None,
        failed_reward: float | None = None,
        raise_on_failure: bool = False,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        batch_size: int | None = None,
        timeout: float | None = None,
        panel: Any = None,
        **icrm_options: Any,
    ) -> None:
        self.failed_reward = _check_failed_reward(failed_reward)
        self.raise_on_failure = raise_on_failure
        shared = {"api_key": api_key, "batch_size": batch_size, "timeout": timeout}
        shared = {key: value for key, value in shared.items() if value is not None}
        accept = partial(check_supplied, consumer=self.consumer)
        self._judging: _EndpointJudging | LocalJudging | _PanelJudging
        if panel is not None:
            own = {"model": model, "endpoint": endpoint, **shared}
            self._judging = _panel_judging(accept, panel, gen, own, icrm_options)
        else:
            self._judging = _judging(accept, model, gen, endpoint, shared, icrm_options)
        self.stats = RewardStats()

    def __call__(
        self, prompts: Sequence[Text], completions: Sequence[Text], **columns: Any
    ) -> list[float | None]:
        """One reward per completion, in order. Dataset columns (one value per completion)
        travel with each example, for judges whose template uses them; trainer keywords
        (``completion_ids``, ``trainer_state``, ``log_metric`` ...) are not columns."""
        check_batch("prompts", prompts)
        check_batch("completions", completions)
        if len(prompts) != len(completions):
            raise InputError(f"{len(prompts)} prompts but {len(completions)} completions")
        started = time.perf_counter()
        outcomes = self._judge(prompts, completions, column_keys(columns, len(completions)))
        self._count(outcomes, time.perf_counter() - started, columns.get("log_metric"))
        return [self._reward(i, outcome) for i, outcome in enumerate(outcomes)]

    def _judge(
        self, prompts: Sequence[Text], completions: Sequence[Text], extras: list[dict[str, Any]]
    ) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        examples: dict[int, dict[str, Any]] = {}
        judges = _checked_by(self._judging)
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            where = f"completion {i}"
            try:
                example = one_reply(to_conversation(prompt, completion), extras[i])
                for judge in judges:
                    checked(judge, self.consumer, example, where)
            except InputError as exc:
                outcomes[i] = Failure(str(exc).removeprefix(f"{where}: "), bad_input=True)
                continue
            examples[i] = example
        if examples:
            judged = self._judging.rewards(list(examples.values()))
            outcomes.update(zip(examples, judged, strict=True))
        return [outcomes[i] for i in range(len(prompts))]

    def _reward(self, index: int, outcome: Outcome) -> float | None:
        if not isinstance(outcome, Failure):
            return outcome
        if self.raise_on_failure:
            error = InputError if outcome.bad_input else VerdictError
            raise error(f"completion {index}: {outcome.message}")
        return self.failed_reward

    def _count(
        self, outcomes: list[Outcome], seconds: float, log_metric: Callable[..., Any] | None
    ) -> None:
        failed = sum(isinstance(o, Failure) for o in outcomes)
        stats = self.stats
        stats.calls += 1
        stats.completions += len(outcomes)
        stats.failed += failed
        stats.seconds += seconds
        if callable(log_metric) and outcomes:  # TRL's GRPO averages these per logging step
            log_metric("icrm/failed_fraction", failed / len(outcomes))
            log_metric("icrm/rewards_per_second", len(outcomes) / seconds if seconds else 0.0)

    def close(self) -> None:
        """Close the ICRM if it was built here, or the endpoint's connections."""
        self._judging.close()

    def __enter__(self) -> ICRMReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _panel_judging(
    accept: Callable[[Judge], None],
    panel: Any,
    gen: dict[str, Any] | None,
    own: dict[str, Any],
    icrm_options: dict[str, Any],
) -> _PanelJudging:
    """Judging by a panel, which takes no model, endpoint or engine options of its own
    (each member's are in the panel file)."""
    given = sorted(key for key, value in own.items() if value is not None)
    if given:
        raise InputError(
            f"ICRMReward(panel=...) judges with the panel's members; drop {', '.join(given)} "
            "(each member's engine and options are in the panel file)"
        )
    return _PanelJudging(accept, panel, gen, icrm_options)


def _checked_by(judging: _EndpointJudging | LocalJudging | _PanelJudging) -> tuple[Judge, ...]:
    """The judges each example is checked against here (a served judge checks its own)."""
    if isinstance(judging, _PanelJudging):
        return judging.judges
    return () if judging.judge is None else (judging.judge,)


def _judging(
    accept: Callable[[Judge], None],
    model: Any,
    gen: dict[str, Any] | None,
    endpoint: str | None,
    shared: dict[str, Any],
    icrm_options: dict[str, Any],
) -> _EndpointJudging | LocalJudging:
    """Judging by the judge served at ``endpoint``, which takes the endpoint's settings
    (``shared``) and nothing of a local judge's; or in this process, where ``api_key`` and
    ``timeout`` are the engine's options and ``batch_size`` has no meaning."""
    if endpoint is None:
        if "batch_size" in shared:
            raise InputError("batch_size: only with endpoint=URL (a served judge)")
        options = {**icrm_options, **shared}
        if model is not None and options:
            raise InputError(
                "ICRMReward(model) judges with that ICRM and its settings; drop "
                f"{', '.join(sorted(options))} (or pass them instead of the model)"
            )
        return LocalJudging(accept, model, gen, **options)
    if model is not None or gen or icrm_options:
        raise InputError(
            "ICRMReward(endpoint=...) judges with the server's model and settings; "
            "drop model, gen and ICRM options"
        )
    return _EndpointJudging(RewardEndpoint(EndpointSettings(endpoint=endpoint, **shared)))


def _check_failed_reward(value: Any) -> float | None:
    """The reward of a completion without a verdict: None (TRL's "no reward") or a finite
    number (a Python or numpy one), as a float."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"failed_reward must be a finite number or None, got {value!r}")
    return float(value)
