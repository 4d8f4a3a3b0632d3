"""Judges written as data: a TOML rubric file, or a pydantic model and a template.

A rubric names its fields (``[[fields]]`` with ``name``, ``type`` = text / int / choice /
bool and, per type, ``max_tokens``, ``min`` / ``max``, ``choices`` / ``scores``,
``description``), a ``template`` (or ``template_file``) whose ``{$key}`` placeholders are
the inputs an example carries, optional ``shots``, and the ``reward`` field. Every problem
is one ``InputError`` line naming the rubric and the field (see docs/judges.md).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

from icrm_sgl.errors import InputError
from icrm_sgl.files import read_text
from icrm_sgl.judges.fields import MAX_VALUES, TokenBudget, check_name
from icrm_sgl.judges.inputs import CONVERSATION_KEYS, TemplateInputs
from icrm_sgl.judges.judge import MAX_FIELD_CHARS, Judge
from icrm_sgl.programs.template import Template, placeholders

#: Placeholders the judge fills itself: the rendered shots and the list of fields.
OWN_KEYS = frozenset({"shots", "fields"})
#: Placeholders only a shot template can use.
SHOT_KEYS = frozenset({"index", "feedback"})
_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class FieldEntry(BaseModel):
    """One ``[[fields]]`` table of a rubric."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: Literal["text", "int", "choice", "bool"]
    description: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    min: int | None = None
    max: int | None = None
    choices: list[str] | None = None
    scores: list[float] | None = None


class RubricFile(BaseModel):
    """The top level of a rubric file."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    template: str | None = None
    template_file: str | None = None
    shot_template: str | None = None
    shot_template_file: str | None = None
    shots: str | None = None
    inputs: list[str] | None = None
    reward: str | None = None
    fields: list[FieldEntry] = Field(min_length=1)


_APPLIES = {
    "max_tokens": ("text",),
    "min": ("int",),
    "max": ("int",),
    "choices": ("choice",),
    "scores": ("choice",),
}


def load_rubric(path: str | Path) -> Judge:
    """A judge from a TOML rubric file; an ``InputError`` naming the problem and field."""
    path = Path(path)
    where = f"rubric {path}"
    try:
        data = tomllib.loads(read_text(path, "rubric"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: invalid TOML ({exc})") from None
    rubric = _checked_file(data, where)
    try:
        return _judge(rubric, path.parent, rubric.name or path.stem)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def _checked_file(data: dict[str, Any], where: str) -> RubricFile:
    try:
        return RubricFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = list(error["loc"])
        place = ".".join(str(p) for p in loc) or "rubric"
        if loc[:1] == ["fields"] and len(loc) > 1 and isinstance(loc[1], int):
            entry = data["fields"][loc[1]]
            name = entry.get("name") if isinstance(entry, dict) else None
            rest = ".".join(str(p) for p in loc[2:])
            place = f"field {name!r}" if name else f"fields[{loc[1]}]"
            place += f": {rest}" if rest else ""
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        if error["type"] == "literal_error" and loc[-1] == "type":
            message = f"unknown type {error['input']!r}; expected text, int, choice or bool"
        raise InputError(f"{where}: {place}: {message}") from None


def _judge(rubric: RubricFile, folder: Path, name: str) -> Judge:
    model = verdict_model(rubric.fields, _NAME.sub("_", name))
    template = _text(rubric.template, rubric.template_file, folder, "template")
    if template is None:
        raise InputError("give a template (or template_file)")
    shot_template = _text(rubric.shot_template, rubric.shot_template_file, folder, "shot_template")
    scale = {}
    reward = rubric.reward
    if reward is not None:
        entry = next((f for f in rubric.fields if f.name == reward), None)
        if entry is not None and entry.type == "choice" and entry.scores is not None:
            scale = dict(zip(entry.choices or [], entry.scores, strict=True))
    shots = None if rubric.shots is None else folder / rubric.shots
    return judge_from_model(
        model,
        template,
        name=name,
        reward=reward,
        scale=scale,
        shots=shots,
        shot_template=shot_template,
        inputs=rubric.inputs,
    )


def _text(inline: str | None, file: str | None, folder: Path, what: str) -> str | None:
    if inline is not None and file is not None:
        raise InputError(f"give {what} or {what}_file, not both")
    if file is not None:
        return read_text(folder / file, f"{what}_file")
    return inline


def verdict_model(entries: list[FieldEntry], name: str) -> type[BaseModel]:
    """The pydantic verdict model of a rubric's fields, in order."""
    seen: set[str] = set()
    fields: dict[str, Any] = {}
    for entry in entries:
        where = f"field {entry.name!r}"
        check_name(entry.name, where)
        if entry.name in seen:
            raise InputError(f"{where}: listed twice")
        seen.add(entry.name)
        for key, kinds in _APPLIES.items():
            if getattr(entry, key) is not None and entry.type not in kinds:
                raise InputError(f"{where}: {key} applies to {' / '.join(kinds)} fields only")
        fields[entry.name] = _annotation(entry, where)
    config = ConfigDict(extra="forbid", frozen=True)
    return create_model(f"{name}_verdict", __config__=config, **fields)


def _annotation(entry: FieldEntry, where: str) -> tuple[Any, Any]:
    described = entry.description
    if entry.type == "text":
        budget = (TokenBudget(entry.max_tokens),) if entry.max_tokens else ()
        text = Annotated[str, StringConstraints(max_length=MAX_FIELD_CHARS), *budget]
        return text, Field(description=described)
    if entry.type == "bool":
        return bool, Field(strict=True, description=described)
    if entry.type == "int":
        if entry.min is None or entry.max is None:
            raise InputError(f"{where}: an int field needs min and max")
        if entry.min > entry.max:
            raise InputError(f"{where}: min {entry.min} is greater than max {entry.max}")
        if entry.max - entry.min + 1 > MAX_VALUES:
            raise InputError(
                f"{where}: {entry.max - entry.min + 1} values from {entry.min} to {entry.max} "
                f'are too many to select over (at most {MAX_VALUES}); use type = "choice" '
                "with a few bands, or a smaller range"
            )
        return int, Field(ge=entry.min, le=entry.max, strict=True, description=described)
    choices = entry.choices or []
    if not choices:
        raise InputError(f"{where}: choices is empty")
    twice = sorted({c for c in choices if choices.count(c) > 1})
    if twice:
        raise InputError(f"{where}: choice {twice[0]!r} is listed twice")
    if any(not c.strip() for c in choices):
        raise InputError(f"{where}: a choice is empty")
    if entry.scores is not None and len(entry.scores) != len(choices):
        raise InputError(f"{where}: {len(entry.scores)} scores for {len(choices)} choices")
    return Literal[tuple(choices)], Field(description=described)


def judge_from_model(
    model: type[BaseModel],
    template: str,
    *,
    name: str | None = None,
    reward: str | None = None,
    scale: dict[str, float] | None = None,
    shots: str | Path | None = None,
    shot_template: str | None = None,
    inputs: list[str] | None = None,
) -> Judge:
    """A judge from a pydantic verdict model (its fields: str, a Literal / Enum of strings,
    int with ge/le, bool) and a template with ``{$key}`` placeholders, one per input."""
    name = _NAME.sub("_", name or str(getattr(model, "__name__", "judge")))
    keys = _input_keys(template, inputs)
    judge = Judge(
        name=name,
        model=model,
        overall=Template.parse(
            template, name="template", allowed=frozenset(keys) | OWN_KEYS, required=frozenset()
        ),
        inputs=TemplateInputs(tuple(keys)),
        shot=_shot_template(shot_template, keys),
        reward=reward,
        scale=scale or {},
    )
    if shots is None:
        return judge
    if "shots" not in judge.overall.keys:
        raise InputError("shots are given but the template has no {$shots} placeholder")
    from dataclasses import replace

    return replace(judge, shots_pool=tuple(read_shots(judge, shots)))


def _input_keys(template: str, inputs: list[str] | None) -> list[str]:
    used = placeholders(template)
    shot_only = [k for k in used if k in SHOT_KEYS]
    if shot_only:
        raise InputError(
            f"template: {{${shot_only[0]}}} is filled only in a shot template; no input "
            "can supply it"
        )
    keys = [k for k in used if k not in OWN_KEYS]
    if inputs is not None:
        for key in inputs:
            check_name(key, f"input {key!r}")
        known = set(inputs) | (set(CONVERSATION_KEYS) if "conversation" in inputs else set())
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise InputError(
                f"template: no input supplies {{${unknown[0]}}} (inputs: {', '.join(inputs)})"
            )
    if not keys:
        raise InputError("template: has no placeholder for the example (e.g. {$response})")
    return keys


def _shot_template(text: str | None, keys: list[str]) -> Template:
    if text is None:
        lines = [f"### {key}\n{{${key}}}\n" for key in keys]
        text = "## Example {$index}\n" + "".join(lines) + "### Evaluation\n{$feedback}\n\n"
    allowed = frozenset(keys) | SHOT_KEYS
    return Template.parse(
        text, name="shot_template", allowed=allowed, required=frozenset({"feedback"})
    )


def read_shots(judge: Judge, path: str | Path) -> list[dict[str, Any]]:
    """A judge's shots from a pool file (a JSON list), each feedback validated."""
    from icrm_sgl.shots import load_shots  # the shots module imports the judges

    return load_shots(judge, path)
