"""ICRM inside a training loop: a judge with TRL's pairwise interface (online DPO,
``judge=``) and a reward function ``(prompts, completions) -> list[float]`` (GRPO and other
libraries that take plain callables). TRL itself is optional: with it installed the judge
is a ``BasePairwiseJudge``; without it, the same class works on its own."""

from __future__ import annotations

import importlib
import random
import warnings
from collections.abc import Sequence
from typing import Any

from icrm_sgl.errors import InputError, VerdictError
from icrm_sgl.integrations.convert import Text, to_conversation
from icrm_sgl.rewards import verdict_reward


def _pairwise_base() -> type:
    """TRL's ``BasePairwiseJudge`` where this TRL version keeps it (top level up to 0.2x,
    then ``trl.experimental.judges``; TRL 1.x dropped judges), else ``object``."""
    for module in ("trl", "trl.experimental.judges"):
        try:
            with warnings.catch_warnings():  # trl.experimental warns on import
                warnings.simplefilter("ignore")
                return importlib.import_module(module).BasePairwiseJudge
        except (ImportError, AttributeError):
            continue
    return object


class _UsesICRM:
    """Holds an ``ICRM`` of one judging mode: the caller's, or one built (and closed) here."""

    rm_type = "individual"

    def __init__(self, model: Any = None, gen: dict[str, Any] | None = None, **icrm_options: Any):
        if model is None:
            from icrm_sgl.icrm import ICRM

            model = ICRM(rm_type=self.rm_type, **icrm_options)
            self._owned = True
        else:
            self._owned = False
        if model.rm_type != self.rm_type:
            raise InputError(f"{type(self).__name__} needs a {self.rm_type} ICRM")
        self.model = model
        self.gen = dict(gen or {})

    def _judge_all(self, examples: list[dict[str, Any]]) -> list[Any]:
        """Judgements in the order of ``examples`` (their ids are their positions)."""
        by_id = {r.id: r for r in self.model.judge_batch(examples, **self.gen)}
        return [by_id[str(i)] for i in range(len(examples))]

    def close(self) -> None:
        """Close the ICRM if it was built here."""
        if self._owned:
            self.model.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ICRMPairwiseJudge(_UsesICRM, _pairwise_base()):  # type: ignore[misc]
    """TRL's pairwise judge: for each prompt, the index (0 or 1) of the better completion,
    or -1 when no valid verdict was obtained. A tie counts for the first completion."""

    rm_type = "pairwise"

    def __init__(
        self,
        model: Any = None,
        gen: dict[str, Any] | None = None,
        seed: int | None = None,
        **icrm_options: Any,
    ) -> None:
        super().__init__(model, gen, **icrm_options)
        self._rng = random.Random(seed)

    def judge(
        self,
        prompts: Sequence[Text],
        completions: Sequence[Sequence[Text]],
        shuffle_order: bool = True,
    ) -> list[int]:
        """Judge each pair once; with ``shuffle_order`` a coin flip decides which completion
        is shown as A (position bias then averages out over a batch)."""
        if len(prompts) != len(completions):
            raise InputError(f"{len(prompts)} prompts but {len(completions)} completion pairs")
        flips = [shuffle_order and self._rng.random() < 0.5 for _ in prompts]
        examples = []
        for i, (prompt, pair, flip) in enumerate(zip(prompts, completions, flips, strict=True)):
            if len(pair) != 2:
                raise InputError(f"prompt {i}: expected 2 completions, got {len(pair)}")
            first, second = (pair[1], pair[0]) if flip else (pair[0], pair[1])
            examples.append(
                {
                    "id": str(i),
                    "conversation_A": to_conversation(prompt, first),
                    "conversation_B": to_conversation(prompt, second),
                }
            )
        picks = []
        for result, flip in zip(self._judge_all(examples), flips, strict=True):
            if not result.ok:
                picks.append(-1)
                continue
            margin = verdict_reward("pairwise", result.verdict, result.meta)  # > 0: A better
            picks.append(int((margin < 0) != flip) if margin else 0)
        return picks


class ICRMReward(_UsesICRM):
    """A reward function ``(prompts, completions, **columns) -> list[float]``: each
    completion's individual score, or its expected value when probabilities exist."""

    rm_type = "individual"
    __name__ = "icrm_reward"  # trainers log reward functions by name

    def __init__(
        self,
        model: Any = None,
        gen: dict[str, Any] | None = None,
        failed_reward: float | None = None,
        **icrm_options: Any,
    ) -> None:
        super().__init__(model, gen, **icrm_options)
        self.failed_reward = failed_reward

    def __call__(
        self, prompts: Sequence[Text], completions: Sequence[Text], **columns: Any
    ) -> list[float]:
        """Score every completion; a failed one raises ``InputError`` / ``VerdictError`` unless
        ``failed_reward`` is set (e.g. ``float("nan")``, which TRL's GRPO ignores)."""
        if len(prompts) != len(completions):
            raise InputError(f"{len(prompts)} prompts but {len(completions)} completions")
        examples = [
            {"id": str(i), "conversation": to_conversation(p, c)}
            for i, (p, c) in enumerate(zip(prompts, completions, strict=True))
        ]
        rewards = []
        for result in self._judge_all(examples):
            if result.ok:
                rewards.append(verdict_reward("individual", result.verdict, result.meta))
            elif self.failed_reward is None:
                error = InputError if result.meta.get("stage") == "input" else VerdictError
                raise error(f"completion {result.id}: {result.error}")
            else:
                rewards.append(self.failed_reward)
        return rewards
