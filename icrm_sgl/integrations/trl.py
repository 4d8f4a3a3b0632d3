"""ICRM inside TRL: ``ICRMReward`` for ``reward_funcs=`` (GRPO, RLOO, online DPO) and
``ICRMPairwiseJudge``, TRL's pairwise-judge interface (``judge=`` of online DPO and the
win-rate callback) in the TRL versions that have one."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import random
import warnings
from collections.abc import Sequence
from typing import Any

from icrm_sgl.errors import InputError, MissingDependencyError
from icrm_sgl.integrations.convert import Text, check_batch, to_conversation
from icrm_sgl.integrations.local import LocalJudging
from icrm_sgl.integrations.reward import ICRMReward, RewardStats
from icrm_sgl.judges import Judge

__all__ = ["JUDGE_VERSIONS", "ICRMPairwiseJudge", "ICRMReward", "PairwisePicker", "RewardStats"]

#: The TRL releases with a pairwise-judge interface (checked against the published wheels).
JUDGE_VERSIONS = (
    "TRL 0.10.1 to 1.0.x (trl.BasePairwiseJudge up to 0.28, "
    "trl.experimental.judges.BasePairwiseJudge from 0.26)"
)


def _pairwise_base() -> type | None:
    """TRL's ``BasePairwiseJudge`` where the installed TRL has it; ``object`` without TRL
    (the judge then works on its own); ``None`` when TRL is installed but has none."""
    if importlib.util.find_spec("trl") is None:
        return object
    for module in ("trl", "trl.experimental.judges"):
        try:
            with warnings.catch_warnings():  # trl.experimental warns on import
                warnings.simplefilter("ignore")
                return importlib.import_module(module).BasePairwiseJudge
        except (ImportError, AttributeError):
            continue
    return None


_BASE = _pairwise_base()


class PairwisePicker:
    """For each prompt, the index (0 or 1) of the better of two completions, or -1 when no
    valid verdict was obtained; a tie counts for the first. TRL's judge signature, usable
    without TRL."""

    def __init__(
        self,
        model: Any = None,
        gen: dict[str, Any] | None = None,
        seed: int | None = None,
        **icrm_options: Any,
    ) -> None:
        self._judging = LocalJudging(_builtin_pairwise, model, gen, "pairwise", **icrm_options)
        self.model = self._judging.model
        self._rng = random.Random(seed)

    def judge(
        self,
        prompts: Sequence[Text],
        completions: Sequence[Sequence[Text]],
        shuffle_order: bool = True,
    ) -> list[int]:
        """Judge each pair once; with ``shuffle_order`` a coin flip decides which completion
        is shown as A (position bias then averages out over a batch)."""
        check_batch("prompts", prompts)
        check_batch("completions", completions)
        if len(prompts) != len(completions):
            raise InputError(f"{len(prompts)} prompts but {len(completions)} completion pairs")
        flips = [shuffle_order and self._rng.random() < 0.5 for _ in prompts]
        examples = []
        for i, (prompt, pair, flip) in enumerate(zip(prompts, completions, flips, strict=True)):
            if len(check_batch(f"completions[{i}]", pair)) != 2:
                raise InputError(f"prompt {i}: expected 2 completions, got {len(pair)}")
            first, second = (pair[1], pair[0]) if flip else (pair[0], pair[1])
            examples.append(
                {
                    "conversation_A": to_conversation(prompt, first),
                    "conversation_B": to_conversation(prompt, second),
                }
            )
        picks = []
        for result, flip in zip(self._judging.judge_all(examples), flips, strict=True):
            if result.verdict is None:
                picks.append(-1)
                continue
            margin = self._judging.judge.reward_value(result.verdict, result.meta)  # > 0: A better
            picks.append(int((margin < 0) != flip) if margin else 0)
        return picks

    def close(self) -> None:
        """Close the ICRM if it was built here."""
        self._judging.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _builtin_pairwise(judge: Judge) -> None:
    """The picker reads the built-in pairwise margin (> 0: A better)."""
    if judge.name != "pairwise":
        raise InputError(f"needs a pairwise ICRM, got a {judge.name} one")


class ICRMPairwiseJudge(PairwisePicker, _BASE or object):  # type: ignore[misc]
    """``PairwisePicker`` as TRL's ``BasePairwiseJudge``; with a TRL that has no judge
    interface (1.1 and later) it refuses to be built, naming the versions that have one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _BASE is None:
            version = importlib.metadata.version("trl")
            raise MissingDependencyError(
                f"TRL {version} has no pairwise-judge interface; {JUDGE_VERSIONS} have one. "
                "With this TRL pass reward_funcs=[ICRMReward(...)] to the trainer, or use "
                "PairwisePicker outside TRL"
            )
        super().__init__(*args, **kwargs)
