"""The in-process side of the training adapters: one ``ICRM`` of one judging mode, the
caller's or one built (and closed) here."""

from __future__ import annotations

from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.integrations.outcome import Failure, Outcome
from icrm_sgl.judgement import Judgement
from icrm_sgl.rewards import verdict_reward


class LocalJudging:
    """Judges examples with an ``ICRM`` in this process."""

    def __init__(
        self, rm_type: str, model: Any = None, gen: dict[str, Any] | None = None, **options: Any
    ) -> None:
        if model is None:
            from icrm_sgl.icrm import ICRM

            model = ICRM(rm_type=rm_type, **options)
            self._owned = True
        else:
            self._owned = False
        if model.rm_type != rm_type:
            raise InputError(f"needs a {rm_type} ICRM, got a {model.rm_type} one")
        self.model = model
        self.gen = dict(gen or {})

    def judge_all(self, examples: list[dict[str, Any]]) -> list[Judgement]:
        """Judgements in the order of ``examples`` (their ids become their positions)."""
        numbered = [{**example, "id": str(i)} for i, example in enumerate(examples)]
        by_id = {r.id: r for r in self.model.judge_batch(numbered, **self.gen)}
        return [by_id[str(i)] for i in range(len(examples))]

    def rewards(self, examples: list[dict[str, Any]]) -> list[Outcome]:
        """Each example's reward (score, or expected score when probabilities exist)."""
        return [
            verdict_reward(self.model.rm_type, r.verdict, r.meta)
            if r.verdict is not None
            else Failure(str(r.error), r.meta.get("stage") == "input")
            for r in self.judge_all(examples)
        ]

    def close(self) -> None:
        """Close the ICRM if it was built here."""
        if self._owned:
            self.model.close()
