"""Verdict formats and the constraints derived from them."""

from icrm_sgl.schemas.verdicts import (
    CHOICES,
    MARGINS,
    MAX_FIELD_CHARS,
    SCORES,
    SWAPPED,
    IndividualVerdict,
    PairwiseVerdict,
    choice_margin,
    choice_winner,
    grammar_schema,
    json_schema,
    public_keys,
    public_verdict,
    validate_verdict,
    verdict_model,
)

__all__ = [
    "CHOICES",
    "MARGINS",
    "MAX_FIELD_CHARS",
    "SCORES",
    "SWAPPED",
    "IndividualVerdict",
    "PairwiseVerdict",
    "choice_margin",
    "choice_winner",
    "grammar_schema",
    "json_schema",
    "public_keys",
    "public_verdict",
    "validate_verdict",
    "verdict_model",
]
