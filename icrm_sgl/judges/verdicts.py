"""Pydantic verdict models of the built-in judges: the public output format (the judges in
``judges.builtin`` are made from them)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from icrm_sgl.judges.judge import MAX_FIELD_CHARS

FieldText = Annotated[str, StringConstraints(max_length=MAX_FIELD_CHARS)]
Choice = Literal["A++", "A+", "A=B", "B+", "B++"]

SCORES: tuple[int, ...] = tuple(range(1, 11))
CHOICES: tuple[str, ...] = ("A++", "A+", "A=B", "B+", "B++")
MARGINS = {"A++": 2, "A+": 1, "A=B": 0, "B+": -1, "B++": -2}
#: A choice as seen from the other order: "A is much better" shown swapped is "B++".
SWAPPED = {"A++": "B++", "A+": "B+", "A=B": "A=B", "B+": "A+", "B++": "A++"}


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


def choice_margin(choice: str) -> int:
    """Map a pairwise choice to its signed margin (+2 … -2)."""
    return MARGINS[choice]


def choice_winner(choice: str) -> Literal["A", "B", "tie"]:
    margin = MARGINS[choice]
    return "A" if margin > 0 else "B" if margin < 0 else "tie"
