"""Judges written as data: a TOML rubric file, or a pydantic model and a template.

A rubric names its fields (``[[fields]]`` with ``name``, ``type`` = text / int / choice /
bool and, per type, ``max_tokens``, ``min`` / ``max``, ``choices`` / ``scores``,
``description``), a ``template`` (or ``template_file``) whose ``{$key}`` placeholders are
the inputs an example carries, optional ``shots``, and the ``reward`` field. Every problem
is one ``InputError`` line naming the rubric and the field (see docs/judges.md). A
``[reward]`` table combines fields (``weights``, ``normalize``), ``[pair]`` makes a judge
of two replies and an ``[inputs]`` table gives inputs a type (text, list, conversation).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    Strict,
    StringConstraints,
    ValidationError,
    create_model,
)

from icrm_sgl.errors import InputError
from icrm_sgl.judges.fields import MAX_VALUES, TokenBudget, check_name, is_attribute
from icrm_sgl.judges.inputs import CONVERSATION_KEYS, INPUT_TYPES, InputType, TemplateInputs
from icrm_sgl.judges.judge import MAX_FIELD_CHARS, Judge, PairSpec
from icrm_sgl.judges.template import Template, placeholders
from icrm_sgl.plumbing.conversation import check_text
from icrm_sgl.plumbing.files import read_text, read_toml

#: Placeholders the judge fills itself: the rendered shots and the list of fields.
OWN_KEYS = frozenset({"shots", "fields"})
#: Placeholders only a shot template can use.
SHOT_KEYS = frozenset({"index", "feedback"})
_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_Entry = TypeVar("_Entry", bound=BaseModel)
#: The names pydantic gives the forms of a key that takes several (``reward``, ``inputs``).
_FORMS = frozenset({"str", "RewardEntry", "list[str]", "dict[str,str]"})


class FieldEntry(BaseModel):
    """One ``[[fields]]`` table of a rubric."""

    model_config = ConfigDict(extra="forbid", strict=True)  # min = "1" is not a bound

    name: str
    type: Literal["text", "int", "choice", "bool"]
    description: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    min: int | None = None
    max: int | None = None
    choices: list[str] | None = None
    scores: list[FiniteFloat] | None = None


class RewardEntry(BaseModel):
    """A combined reward (``[reward]``, or ``make_judge(reward={...})``): each field's
    expected value times its weight, summed; ``normalize`` maps each to 0-1 first."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, Annotated[float, Strict()]] = Field(min_length=1)  # not "1", not true
    normalize: bool = Field(False, strict=True)


class PairEntry(BaseModel):
    """A judge of two replies (``[pair]``): the inputs holding them, and how each choice
    of the reward field reads with them swapped."""

    model_config = ConfigDict(extra="forbid")

    replies: list[str]
    swap: dict[str, str]


class RubricFile(BaseModel):
    """The top level of a rubric file."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    template: str | None = None
    template_file: str | None = None
    shot_template: str | None = None
    shot_template_file: str | None = None
    shots: str | None = None
    inputs: list[str] | dict[str, str] | None = None
    reward: str | RewardEntry | None = None
    pair: PairEntry | None = None
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
    rubric = _read_rubric(path)
    try:
        return _judge(rubric, path.parent, rubric.name or path.stem)
    except InputError as exc:
        raise InputError(f"rubric {path}: {exc}") from None


def rubric_sources(path: str | Path) -> tuple[Path, ...]:
    """The files a rubric names (``template_file``, ``shot_template_file``, ``shots``), so
    that a command writes over none of them; none when the rubric itself cannot be read
    (``load_rubric`` says why)."""
    path = Path(path)
    try:
        rubric = _read_rubric(path)
    except InputError:
        return ()
    named = (rubric.template_file, rubric.shot_template_file, rubric.shots)
    return tuple(path.parent / name for name in named if name is not None)


def _read_rubric(path: Path) -> RubricFile:
    return _checked_file(read_toml(path, "rubric"), f"rubric {path}")


def _checked_file(data: dict[str, Any], where: str) -> RubricFile:
    try:
        return RubricFile.model_validate(data)
    except ValidationError as exc:
        located = [(_data_path(data, error["loc"]), error) for error in exc.errors()]
        loc, error = max(located, key=lambda pair: len(pair[0]))  # the deepest: the form given
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


def _data_path(data: Any, loc: tuple[int | str, ...]) -> list[int | str]:
    """An error's location in the rubric itself: without the names pydantic gives the
    forms a key may take (``reward.RewardEntry.weights`` → ``reward.weights``)."""
    path: list[int | str] = []
    for part in loc:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and part in range(len(data))
        ):
            data = data[part]  # type: ignore[index]
            path.append(part)
        elif not isinstance(part, str) or part not in _FORMS:
            path.append(part)  # a missing or unknown key
    return path


def _judge(rubric: RubricFile, folder: Path, name: str) -> Judge:
    model = verdict_model(rubric.fields, _NAME.sub("_", name))
    template = _text(rubric.template, rubric.template_file, folder, "template")
    if template is None:
        raise InputError("give a template (or template_file)")
    shot_template = _text(rubric.shot_template, rubric.shot_template_file, folder, "shot_template")
    shots = None if rubric.shots is None else folder / rubric.shots
    scores = _scores(rubric)
    scale = scores.pop(rubric.reward, None) if isinstance(rubric.reward, str) else None
    return judge_from_model(
        model,
        template,
        name=name,
        reward=rubric.reward,
        scale=scale,
        scales=scores or None,
        shots=shots,
        shot_template=shot_template,
        inputs=rubric.inputs,
        pair=rubric.pair,
    )


def _scores(rubric: RubricFile) -> dict[str, dict[str, float]]:
    """Each rewarded choice field's number per choice (its ``scores``); scores on a field
    the reward does not use would have no effect, so they are refused."""
    reward = rubric.reward
    rewarded = set(reward.weights) if isinstance(reward, RewardEntry) else {reward}
    scores: dict[str, dict[str, float]] = {}
    for entry in rubric.fields:
        if entry.scores is None:
            continue
        if entry.name not in rewarded:
            raise InputError(
                f"field {entry.name!r}: scores only number the reward field's choices (or a "
                f'weighted field\'s); set reward = "{entry.name}", weight it in [reward] or '
                "remove them"
            )
        scores[entry.name] = dict(zip(entry.choices or [], entry.scores, strict=True))
    return scores


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
    attributes = _attributes([entry.name for entry in entries])
    for entry in entries:
        where = f"field {entry.name!r}"
        check_name(entry.name, where)
        if entry.name in seen:
            raise InputError(f"{where}: listed twice")
        seen.add(entry.name)
        for key, kinds in _APPLIES.items():
            if getattr(entry, key) is not None and entry.type not in kinds:
                raise InputError(f"{where}: {key} applies to {' / '.join(kinds)} fields only")
        annotation, constraints = _annotation(entry, where)
        attribute = attributes[entry.name]
        alias = entry.name if attribute != entry.name else None
        info = Field(alias=alias, description=entry.description, **constraints)
        fields[attribute] = (annotation, info)
    config = ConfigDict(extra="forbid", frozen=True)
    return create_model(f"{name}_verdict", __config__=config, **fields)


def _attributes(names: list[str]) -> dict[str, str]:
    """Each field's Python attribute: its name, or a free ``field_<name>`` where the name
    is a keyword or pydantic's own (``class``, ``None``, ``copy``); the JSON key stays the
    name (an alias)."""
    taken = set(names)
    attributes = {}
    for name in names:
        attribute = name
        if not is_attribute(name):
            attribute = f"field_{name}"
            while attribute in taken:
                attribute += "_"
            taken.add(attribute)
        attributes[name] = attribute
    return attributes


def _annotation(entry: FieldEntry, where: str) -> tuple[Any, dict[str, Any]]:
    """A field's type and its ``Field`` constraints."""
    if entry.type == "text":
        budget = (TokenBudget(entry.max_tokens),) if entry.max_tokens else ()
        return Annotated[str, StringConstraints(max_length=MAX_FIELD_CHARS), *budget], {}
    if entry.type == "bool":
        return bool, {"strict": True}
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
        return int, {"ge": entry.min, "le": entry.max, "strict": True}
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
    return Literal[tuple(choices)], {}


def judge_from_model(
    model: type[BaseModel],
    template: str,
    *,
    name: str | None = None,
    reward: str | Mapping[str, Any] | RewardEntry | None = None,
    scale: dict[str, float] | None = None,
    scales: dict[str, dict[str, float]] | None = None,
    shots: str | Path | None = None,
    shot_template: str | None = None,
    inputs: list[str] | Mapping[str, str] | None = None,
    pair: Mapping[str, Any] | PairEntry | None = None,
) -> Judge:
    """A judge from a pydantic verdict model (its fields: str, a Literal / Enum of strings,
    int with ge/le, bool) and a template with ``{$key}`` placeholders, one per input.
    ``reward`` is a field's name or ``{"weights": {...}, "normalize": bool}``; ``scale``
    numbers a choice reward's choices, ``scales`` each weighted choice field's."""
    _check_arguments(template, name, shots, shot_template, inputs)
    name = _NAME.sub("_", name or str(getattr(model, "__name__", "judge")))
    keys = _input_keys(template, inputs)
    combined = None if isinstance(reward, str) else _entry(RewardEntry, reward, "reward")
    sides = _entry(PairEntry, pair, "pair")
    judge = Judge(
        name=name,
        model=model,
        overall=Template.parse(
            template, name="template", allowed=frozenset(keys) | OWN_KEYS, required=frozenset()
        ),
        inputs=TemplateInputs(tuple(keys), _input_types(inputs, keys)),
        shot=_shot_template(shot_template, keys),
        reward=reward if isinstance(reward, str) else None,
        scale=scale or {},
        pair=None if sides is None else PairSpec(tuple(sides.replies), sides.swap),  # type: ignore[arg-type]
        weights={} if combined is None else combined.weights,
        normalize=False if combined is None else combined.normalize,
        scales=scales or {},
    )
    if shots is None:
        return judge
    if "shots" not in judge.overall.keys:
        raise InputError("shots are given but the template has no {$shots} placeholder")
    from dataclasses import replace

    return replace(judge, shots_pool=tuple(read_shots(judge, shots)))


def _entry(kind: type[_Entry], value: Any, what: str) -> _Entry | None:
    """A ``[reward]`` / ``[pair]`` table given from Python (a dict) checked as the rubric's
    is: one ``InputError`` line naming the key."""
    if value is None or isinstance(value, kind):
        return value
    if not isinstance(value, Mapping):
        form = "text (a field name) or a table (dict)" if what == "reward" else "a table (dict)"
        raise InputError(f"{what} must be {form}, got {value!r}")
    try:
        return kind.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        place = ".".join(str(p) for p in error["loc"])
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise InputError(f"{what}.{place}: {message}") from None


def _input_types(inputs: Any, keys: list[str]) -> dict[str, InputType]:
    """The type of each input the template uses, from an ``[inputs]`` table (default text)."""
    if not isinstance(inputs, Mapping):
        return {}
    types: dict[str, InputType] = {}
    for key, kind in inputs.items():
        if kind not in INPUT_TYPES:
            raise InputError(
                f"input {key!r}: unknown type {kind!r}; expected {', '.join(INPUT_TYPES)}"
            )
        if key in keys:
            types[key] = kind
    return types


def _check_arguments(template: Any, name: Any, shots: Any, shot_template: Any, inputs: Any) -> None:
    """Arguments of the wrong type (``make_judge(M, None)``) as one ``InputError`` now,
    not a ``TypeError`` from deep inside."""
    _check_text(template, "template")
    for value, what in ((name, "name"), (shot_template, "shot_template")):
        if value is not None:
            _check_text(value, what)
    if shots is not None and not isinstance(shots, str | Path):
        raise InputError(f"shots must be a file path, got {type(shots).__name__}")
    if inputs is not None and not (
        isinstance(inputs, list | tuple | Mapping) and all(isinstance(key, str) for key in inputs)
    ):
        raise InputError(
            f"inputs must be a list of input names or a table of name = type, got {inputs!r}"
        )


def _check_text(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise InputError(f"{what} must be text, got {type(value).__name__}")
    check_text(value, what)


def _input_keys(template: str, inputs: Collection[str] | None) -> list[str]:
    used = placeholders(template)
    shot_only = [k for k in used if k in SHOT_KEYS]
    if shot_only:
        raise InputError(
            f"template: {{${shot_only[0]}}} is filled only in a shot template; no input "
            "can supply it"
        )
    keys = [k for k in used if k not in OWN_KEYS]
    for key in keys:
        _check_argument(key)
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


def _check_argument(key: str) -> None:
    """Each input is passed to the judging program as a keyword argument, after its
    state ``s``, so neither a Python keyword nor ``s`` can name one."""
    if keyword.iskeyword(key):
        raise InputError(
            f"template: {{${key}}}: {key!r} is a Python keyword and cannot name an input "
            "(inputs are the judging program's arguments); choose another name"
        )
    if key == "s":
        raise InputError(
            "template: {$s}: 's' is the judging program's state and cannot name an input; "
            "choose another name"
        )


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
    from icrm_sgl.judges.shots import load_shots  # the shots module imports the judges

    return load_shots(judge, path)
