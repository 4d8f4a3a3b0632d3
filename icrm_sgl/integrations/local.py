"""The in-process side of the training adapters: one ``ICRM``, the caller's or one built
(and closed) here, whose judge the adapter has accepted before any engine loads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from icrm_sgl.integrations.outcome import Failure, Outcome
from icrm_sgl.judges import Judge
from icrm_sgl.judging.settings import Settings
from icrm_sgl.plumbing.judgement import Judgement


class LocalJudging:
    """Judges examples with an ``ICRM`` in this process. ``accept`` raises ``InputError``
    for a judge the adapter cannot use; ``options`` are ``ICRM``'s keywords (``judge=``, a
    rubric path, a ``Judge`` or a built-in name, or ``rm_type=``; ``default`` without)."""

    def __init__(
        self,
        accept: Callable[[Judge], None],
        model: Any = None,
        gen: dict[str, Any] | None = None,
        default: str = "individual",
        **options: Any,
    ) -> None:
        self._owned = model is None
        if model is None:
            model = _built(accept, default, options)
        else:
            accept(model.definition)
        self.model = model
        self.judge: Judge = model.definition
        self.gen = dict(gen or {})

    def judge_all(self, examples: list[dict[str, Any]]) -> list[Judgement]:
        """Judgements in the order of ``examples`` (their ids become their positions)."""
        numbered = [{**example, "id": str(i)} for i, example in enumerate(examples)]
        by_id = {r.id: r for r in self.model.judge_batch(numbered, **self.gen)}
        return [by_id[str(i)] for i in range(len(examples))]

    def rewards(self, examples: list[dict[str, Any]]) -> list[Outcome]:
        """Each example's reward (its expected value when probabilities exist)."""
        return [
            self.judge.reward_value(r.verdict, r.meta)
            if r.verdict is not None
            else Failure(str(r.error), r.meta.get("stage") == "input")
            for r in self.judge_all(examples)
        ]

    def close(self) -> None:
        """Close the ICRM if it was built here."""
        if self._owned:
            self.model.close()


def _built(accept: Callable[[Judge], None], default: str, options: dict[str, Any]) -> Any:
    """An ``ICRM`` from ``ICRM``'s keywords, its judge resolved (once) and accepted first."""
    from icrm_sgl.judging.icrm import ICRM

    backend = options.pop("backend", None)
    if options.get("judge") is None and options.get("rm_type") is None:
        options = {**options, "rm_type": default, "judge": None}
    settings = Settings.from_flat(options)
    judge = settings.judging.definition()
    accept(judge)
    if settings.judging.judge is not None:
        settings = settings.with_judge(judge)
    return ICRM.from_settings(*settings, backend=backend)
