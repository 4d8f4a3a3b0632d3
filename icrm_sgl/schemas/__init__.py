"""Verdict formats and the constraints derived from them."""

from icrm_sgl.schemas.verdicts import (
    CHOICES,
    MAX_FIELD_CHARS,
    RM_TYPES,
    SCORES,
    IndividualVerdict,
    PairwiseVerdict,
    choice_margin,
    choice_winner,
    grammar_schema,
    json_schema,
    public_keys,
    validate_verdict,
    verdict_model,
)

__all__ = [
    "CHOICES",
    "MAX_FIELD_CHARS",
    "RM_TYPES",
    "SCORES",
    "IndividualVerdict",
    "PairwiseVerdict",
    "choice_margin",
    "choice_winner",
    "grammar_schema",
    "json_schema",
    "public_keys",
    "validate_verdict",
    "verdict_model",
]
