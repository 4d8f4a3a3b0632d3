"""Pydantic verdict models: the single source of truth for the public output format."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from icrm_sgl.errors import InputError

#: Longest text a free-text verdict field may hold, in characters.
MAX_FIELD_CHARS = 2000

FieldText = Annotated[str, StringConstraints(max_length=MAX_FIELD_CHARS)]
Choice = Literal["A++", "A+", "A=B", "B+", "B++"]

SCORES: tuple[int, ...] = tuple(range(1, 11))
CHOICES: tuple[str, ...] = ("A++", "A+", "A=B", "B+", "B++")
_MARGINS = {"A++": 2, "A+": 1, "A=B": 0, "B+": -1, "B++": -2}


class _Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    def to_public(self) -> dict[str, Any]:
        """The verdict as a dict with the public key names, in the public order."""
        return self.model_dump(by_alias=True)

    def to_json(self, indent: int | None = 4) -> str:
        return json.dumps(self.to_public(), indent=indent, ensure_ascii=False)


class IndividualVerdict(_Verdict):
    """A judgement of one conversation's last assistant turn."""

    intent: FieldText
    checklist: FieldText
    strengths: FieldText
    weaknesses: FieldText
    score: int = Field(ge=1, le=10, strict=True)


class PairwiseVerdict(_Verdict):
    """A comparison of two conversations that differ only in the last assistant turn."""

    analysis_of_a: FieldText = Field(alias="analysis of A")
    analysis_of_b: FieldText = Field(alias="analysis of B")
    reason_a_eq_b: FieldText = Field(alias="reason of A=B")
    reason_a_gt_b: FieldText = Field(alias="reason of A>B")
    reason_b_gt_a: FieldText = Field(alias="reason of B>A")
    choice: Choice

    @property
    def margin(self) -> int:
        """Signed preference: A++=+2, A+=+1, A=B=0, B+=-1, B++=-2."""
        return choice_margin(self.choice)

    @property
    def winner(self) -> Literal["A", "B", "tie"]:
        return choice_winner(self.choice)


RM_TYPES: dict[str, type[_Verdict]] = {
    "individual": IndividualVerdict,
    "pairwise": PairwiseVerdict,
}


def verdict_model(rm_type: str) -> type[_Verdict]:
    """The verdict model for a judging mode ('individual' or 'pairwise')."""
    try:
        return RM_TYPES[rm_type]
    except KeyError as exc:
        raise InputError(
            f"unknown rm_type {rm_type!r}: expected one of {', '.join(RM_TYPES)}"
        ) from exc


def choice_margin(choice: str) -> int:
    """Map a pairwise choice to its signed margin (+2 … -2)."""
    return _MARGINS[choice]


def choice_winner(choice: str) -> Literal["A", "B", "tie"]:
    margin = _MARGINS[choice]
    return "A" if margin > 0 else "B" if margin < 0 else "tie"


def public_keys(rm_type: str) -> list[str]:
    """The public JSON keys of a verdict, in order."""
    model = verdict_model(rm_type)
    return [f.alias or name for name, f in model.model_fields.items()]


def _forbid_extra(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object":
            node["additionalProperties"] = False
        for value in node.values():
            _forbid_extra(value)
    elif isinstance(node, list):
        for value in node:
            _forbid_extra(value)


def json_schema(rm_type: str) -> dict[str, Any]:
    """The verdict's JSON schema with public keys and ``additionalProperties: false``."""
    schema = verdict_model(rm_type).model_json_schema(by_alias=True)
    _forbid_extra(schema)
    return schema


def grammar_schema(rm_type: str) -> dict[str, Any]:
    """The verdict schema for servers that compile it into a grammar (llama.cpp, vLLM):
    no ``maxLength`` (unrolled into nested rules, it is refused or compiles for seconds)
    and the score as an ``enum`` of 1-10 (llama.cpp's converter let integer bounds
    through). Validation still enforces both."""
    schema = _drop_key(json_schema(rm_type), "maxLength")
    score = schema["properties"].get("score")
    if score is not None:
        schema["properties"]["score"] = {"title": score.get("title", "Score"), "enum": list(SCORES)}
    return schema


def _drop_key(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return {k: _drop_key(v, key) for k, v in node.items() if k != key}
    if isinstance(node, list):
        return [_drop_key(v, key) for v in node]
    return node


def validate_verdict(rm_type: str, data: str | dict[str, Any]) -> _Verdict:
    """Parse and validate a verdict (JSON text or dict); raises pydantic's ValidationError."""
    model = verdict_model(rm_type)
    if isinstance(data, str):
        return model.model_validate_json(data)
    return model.model_validate(data)
