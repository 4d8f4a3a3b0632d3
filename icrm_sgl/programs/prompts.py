"""Prompt text of a judge: shot rendering and per-example fields (thin views of
``icrm_sgl.judges``, kept for code written against the two built-in modes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icrm_sgl.judges import Judge, as_judge, builtin_judge
from icrm_sgl.judges.inputs import NO_HISTORY, check_one_form, render_history
from icrm_sgl.judges.judge import feedback_key
from icrm_sgl.programs.template import Template

__all__ = [
    "NO_HISTORY",
    "PromptTemplates",
    "check_one_form",
    "example_fields",
    "feedback_key",
    "render_feedback",
    "render_history",
]


def render_feedback(judge: Judge | str, feedback: Mapping[str, Any]) -> str:
    """A shot's verdict: one JSON line, keys in public order (exactly what the program
    writes), or the judge's feedback template filled with the verdict's fields."""
    return as_judge(judge).render_feedback(feedback)


def example_fields(
    judge: Judge | str, example: Mapping[str, Any], where: str = "example"
) -> dict[str, str]:
    """Validate an example against a judge's inputs and return its program arguments."""
    return as_judge(judge).example_fields(example, where)


@dataclass(frozen=True)
class PromptTemplates:
    """A built-in judge's templates (overall, per shot, feedback) with user files in
    place of the packaged ones."""

    judge: Judge

    @classmethod
    def load(
        cls,
        rm_type: str,
        template_path: str | Path | None = None,
        shot_template_path: str | Path | None = None,
        feedback_template_path: str | Path | None = None,
    ) -> PromptTemplates:
        """Built-in templates, or the user's files in the seed's ``{$key}`` style."""
        return cls(
            builtin_judge(rm_type, template_path, shot_template_path, feedback_template_path)
        )

    @property
    def overall(self) -> Template:
        return self.judge.overall

    @property
    def shot(self) -> Template | None:
        return self.judge.shot

    def render_shots(self, shots: Sequence[Mapping[str, Any]]) -> str:
        """All shots rendered in order, numbered from 1."""
        return self.judge.render_shots(shots)

    def with_shots(self, shots: Sequence[Mapping[str, Any]]) -> Template:
        """The overall template with the shots filled in: a constant prefix, then slots."""
        return self.judge.prompt(shots)
