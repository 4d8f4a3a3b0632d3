"""Prompt text for both judging modes: templates, shot rendering, and per-example fields."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from icrm_sgl.conversation import Turn, split_conversation, validate_conversation, validate_pair
from icrm_sgl.errors import InputError
from icrm_sgl.programs.template import Template
from icrm_sgl.schemas import public_keys

NO_HISTORY = "(none)"
_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}

#: Placeholders filled per example (program arguments), by judging mode.
EXAMPLE_KEYS: dict[str, tuple[str, ...]] = {
    "individual": ("history", "user_query", "model_output"),
    "pairwise": ("history", "user_query", "candidate_A", "candidate_B"),
}


def render_history(history: Sequence[Turn]) -> str:
    """Earlier turns as 'Role: text' blocks, or a marker when there are none."""
    if not history:
        return NO_HISTORY
    return "\n".join(f"{_ROLE_NAMES[t['role']]}: {t['content']}" for t in history)


def render_feedback(
    rm_type: str, feedback: Mapping[str, Any], template: Template | None = None
) -> str:
    """A shot's verdict: one JSON line, keys in public order (exactly what the program
    writes), or the user's feedback template filled with the verdict's fields."""
    ordered = {key: feedback[key] for key in public_keys(rm_type)}
    if template is None:
        return json.dumps(ordered, ensure_ascii=False)
    return template.render({feedback_key(key): str(value) for key, value in ordered.items()})


def feedback_key(public_key: str) -> str:
    """A verdict key as a placeholder name: ``analysis of A`` → ``analysis_of_A``,
    ``reason of A>B`` → ``reason_of_A_gt_B`` (``=`` → ``eq``)."""
    spelled = public_key.replace(">", " gt ").replace("=", " eq ")
    return "_".join(spelled.split())


def check_one_form(example: Mapping[str, Any], where: str = "example") -> None:
    """An example carries the individual or the pairwise conversation keys, not both."""
    if "conversation" in example and {"conversation_A", "conversation_B"} & set(example):
        raise InputError(
            f"{where}: has both 'conversation' and 'conversation_A'/'conversation_B'; "
            "keep one form (individual or pairwise)"
        )


def example_fields(
    rm_type: str, example: Mapping[str, Any], where: str = "example"
) -> dict[str, str]:
    """Validate an example's conversation(s) and return the per-example template values."""
    check_one_form(example, where)
    if rm_type == "individual":
        turns = validate_conversation(example.get("conversation"), f"{where}: conversation")
        ex = split_conversation(turns)
        return {
            "history": render_history(ex.history),
            "user_query": ex.user_query,
            "model_output": ex.response,
        }
    a, b = validate_pair(example.get("conversation_A"), example.get("conversation_B"), where)
    ex_a, ex_b = split_conversation(a), split_conversation(b)
    return {
        "history": render_history(ex_a.history),
        "user_query": ex_a.user_query,
        "candidate_A": ex_a.response,
        "candidate_B": ex_b.response,
    }


@dataclass(frozen=True)
class PromptTemplates:
    """The overall template (instruction, shots slot, task) and the per-shot template."""

    rm_type: str
    overall: Template
    shot: Template
    #: How a shot's verdict is written (``None``: the JSON line the program produces).
    feedback: Template | None = None

    @classmethod
    def load(
        cls,
        rm_type: str,
        template_path: str | Path | None = None,
        shot_template_path: str | Path | None = None,
        feedback_template_path: str | Path | None = None,
    ) -> PromptTemplates:
        """Built-in templates, or the user's files in the seed's ``{$key}`` style; a
        feedback template's placeholders are the verdict's keys (see ``feedback_key``)."""
        keys = frozenset(EXAMPLE_KEYS[rm_type])
        overall_allowed = keys | {"shots"}
        shot_allowed = keys | {"index", "feedback"}
        required_shot = keys - {"history"} | {"feedback"}
        required_overall = keys - {"history"} | {"shots"}
        return cls(
            rm_type,
            _template(template_path, f"{rm_type}.template", overall_allowed, required_overall),
            _template(shot_template_path, f"{rm_type}_shot.template", shot_allowed, required_shot),
            _feedback_template(rm_type, feedback_template_path),
        )

    def render_shots(self, shots: Sequence[Mapping[str, Any]]) -> str:
        """All shots rendered in order, numbered from 1."""
        parts = []
        for i, shot in enumerate(shots, start=1):
            where = f"shot {shot.get('id', i)}"
            values = example_fields(self.rm_type, shot, where)
            values["index"] = str(i)
            values["feedback"] = render_feedback(self.rm_type, shot["feedback"], self.feedback)
            parts.append(self.shot.render(values))
        return "".join(parts)

    def with_shots(self, shots: Sequence[Mapping[str, Any]]) -> Template:
        """The overall template with the shots filled in: a constant prefix, then slots."""
        return self.overall.fill({"shots": self.render_shots(shots)})


def _template(
    path: str | Path | None, builtin: str, allowed: frozenset[str], required: frozenset[str]
) -> Template:
    if path is not None:
        return Template.load(path, allowed=allowed, required=required)
    text = resources.files("icrm_sgl.programs").joinpath("templates", builtin).read_text("utf-8")
    return Template.parse(text, name=builtin, allowed=allowed, required=required)


def _feedback_template(rm_type: str, path: str | Path | None) -> Template | None:
    if path is None:
        return None
    keys = [feedback_key(k) for k in public_keys(rm_type)]
    return Template.load(path, allowed=frozenset(keys), required=frozenset(keys[-1:]))
