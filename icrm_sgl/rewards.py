"""One number per verdict, for RL training loops: the judge's reward field's value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icrm_sgl.judges import Judge, as_judge


def verdict_reward(
    judge: Judge | str, verdict: Mapping[str, Any], meta: Mapping[str, Any]
) -> float:
    """The verdict's reward (built-in judges: the score 1-10, or the margin A++=+2 …
    B++=-2); its expected value over ``meta["probabilities"]`` when the engine reported
    them (greedy ``select``), else (sampling) the value the verdict names, through the
    judge's ``scale``: what a custom judge's ``meta["reward"]`` holds."""
    return as_judge(judge).reward_value(verdict, meta)
