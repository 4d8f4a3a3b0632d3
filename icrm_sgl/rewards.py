"""One number per verdict, for RL training loops: a score or a signed pairwise margin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icrm_sgl.schemas import choice_margin

#: rm_type -> (verdict key, meta key a newer engine may precompute, value of a label).
_SCALES = {
    "individual": ("score", "expected_score", int),
    "pairwise": ("choice", "expected_margin", choice_margin),
}


def verdict_reward(rm_type: str, verdict: Mapping[str, Any], meta: Mapping[str, Any]) -> float:
    """The verdict's score (1-10) or margin (A++=+2 … B++=-2); its expected value over
    ``meta["probabilities"]`` when the engine reported them (greedy ``select``)."""
    key, expected_key, value = _SCALES[rm_type]
    if meta.get(expected_key) is not None:
        return float(meta[expected_key])
    probabilities = meta.get("probabilities")
    if probabilities:
        total = sum(probabilities.values())
        if total > 0:
            return sum(value(label) * p for label, p in probabilities.items()) / total
    return float(value(verdict[key]))
