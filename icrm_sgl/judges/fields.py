"""A verdict model's fields, classified once into the four kinds a program can produce.

``text`` is a JSON string generated under a regex; ``choice`` (a ``Literal`` of strings or
a string ``Enum``), ``int`` (bounded by ``Field(ge=, le=)``) and ``bool`` are produced by
``select`` over their values, which also gives a probability for each value.
"""

from __future__ import annotations

import enum
import json
import keyword
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from icrm_sgl.errors import InputError
from icrm_sgl.plumbing.conversation import check_text

Kind = Literal["text", "choice", "int", "bool"]
#: The most values a ``select`` may score; a wider integer range is refused.
MAX_VALUES = 101
#: A name usable as a JSON key and a template placeholder.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class TokenBudget:
    """Marks a text field's token budget: ``Annotated[str, TokenBudget(64)]``."""

    tokens: int


@dataclass(frozen=True)
class FieldSpec:
    """One verdict field: its public key, its kind and, for selectable kinds, its values."""

    name: str
    key: str
    kind: Kind
    labels: tuple[Any, ...] = ()
    description: str | None = None
    max_tokens: int | None = None

    @property
    def selectable(self) -> bool:
        return self.kind != "text"

    @property
    def values(self) -> tuple[str, ...]:
        """Each value as the verdict JSON spells it, without quotes: a choice JSON-escaped
        (``say \\"hi\\"``), an int's digits, ``true`` / ``false``. What a program writes
        and selects among, and what engines match in a reply."""
        return tuple(_spelled(label) for label in self.labels)

    @property
    def texts(self) -> tuple[str, ...]:
        """Each value as text: a choice itself (``say "hi"``), an int's digits, ``true`` /
        ``false``. The keys of its probabilities and of ``scale``."""
        return tuple(_text(label) for label in self.labels)

    def text_of(self, value: str) -> str:
        """The text of a value spelled as in ``values``; ``KeyError`` for another."""
        return dict(zip(self.values, self.texts, strict=True))[value]

    @property
    def quoted(self) -> bool:
        """Whether the value is a JSON string (written between quotes)."""
        return self.kind in ("text", "choice")

    def number(self, value: str) -> float:
        """A value as a number (ints and bools); ``ValueError`` for a choice."""
        if self.kind == "int":
            return float(int(value))
        if self.kind == "bool":
            return 1.0 if value == "true" else 0.0
        raise ValueError(f"{self.key} is a choice, not a number")


def _spelled(label: Any) -> str:
    text = _text(label)
    return json.dumps(text, ensure_ascii=False)[1:-1] if isinstance(label, str) else text


def _text(label: Any) -> str:
    if isinstance(label, bool):
        return "true" if label else "false"
    if isinstance(label, enum.Enum):
        label = label.value
    return str(label)


def model_fields(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    """The model's fields in order; an ``InputError`` naming the first one that a program
    cannot produce."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise InputError(f"a judge's verdict model must be a pydantic model class, got {model!r}")
    computed = list(model.model_computed_fields)
    if computed:
        raise InputError(
            f"verdict model {model.__name__}: computed field {computed[0]!r} is not written by "
            "the judge; to combine fields into the reward use reward weights "
            '(reward={"weights": {...}})'
        )
    specs = tuple(_spec(name, info) for name, info in model.model_fields.items())
    if not specs:
        raise InputError(f"verdict model {model.__name__}: has no fields")
    keys = [s.key for s in specs]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise InputError(f"verdict model {model.__name__}: key {duplicated[0]!r} is used twice")
    return specs


def _spec(name: str, info: FieldInfo) -> FieldSpec:
    key = info.alias or name
    where = f"field {key!r}"
    if not key.strip() or any(ord(c) < 32 for c in key):
        raise InputError(f"{where}: not a usable JSON key")
    check_text(key, where)
    check_text(info.description or "", f"{where}: description")  # the prompt shows it
    budgets = [m.tokens for m in info.metadata if isinstance(m, TokenBudget)]
    tokens = budgets[0] if budgets else None
    kind, labels = _classify(info.annotation, info, where)
    return FieldSpec(name, key, kind, labels, info.description, tokens if kind == "text" else None)


def _classify(annotation: Any, info: FieldInfo, where: str) -> tuple[Kind, tuple[Any, ...]]:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if annotation is str:
        return "text", ()
    if annotation is bool:
        return "bool", (True, False)
    if annotation is int:
        return "int", _int_range(info, where)
    if typing.get_origin(annotation) is Literal:
        return "choice", _choices(typing.get_args(annotation), where)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "choice", _choices(tuple(m.value for m in annotation), where)
    raise InputError(
        f"{where}: type {getattr(annotation, '__name__', annotation)!s} is not supported; "
        "use str (text), a Literal or Enum of strings (choice), int with ge/le, or bool"
    )


def _choices(values: tuple[Any, ...], where: str) -> tuple[str, ...]:
    if not values:
        raise InputError(f"{where}: no choices")
    if not all(isinstance(v, str) and v for v in values):
        raise InputError(f"{where}: choices must be non-empty strings, got {list(values)!r}")
    if len(set(values)) != len(values):
        raise InputError(f"{where}: a choice is listed twice")
    for value in values:
        check_text(value, f"{where}: choice {value!a}")  # the prompt and program show it
    if len(values) > MAX_VALUES:
        raise InputError(f"{where}: {len(values)} choices; at most {MAX_VALUES} can be selected")
    return values


def _int_range(info: FieldInfo, where: str) -> tuple[int, ...]:
    low: int | None = None
    high: int | None = None
    for bound in info.metadata:
        if isinstance(bound, Ge | Gt):
            low = _whole(bound.ge if isinstance(bound, Ge) else bound.gt, where)
            low += 0 if isinstance(bound, Ge) else 1
        elif isinstance(bound, Le | Lt):
            high = _whole(bound.le if isinstance(bound, Le) else bound.lt, where)
            high -= 0 if isinstance(bound, Le) else 1
    if low is None or high is None:
        raise InputError(f"{where}: an int field needs both bounds (Field(ge=..., le=...))")
    if low > high:
        raise InputError(f"{where}: min {low} is greater than max {high}")
    if high - low + 1 > MAX_VALUES:
        raise InputError(
            f"{where}: {high - low + 1} values from {low} to {high} are too many to select "
            f"over (at most {MAX_VALUES}); use a smaller range, or a choice field of bands"
        )
    return tuple(range(low, high + 1))


def _whole(bound: Any, where: str) -> int:
    if isinstance(bound, bool) or not isinstance(bound, int):
        raise InputError(f"{where}: an int field's bounds must be integers, got {bound!r}")
    return bound


def check_name(name: Any, where: str) -> str:
    """A name that is a valid JSON key and placeholder, or an ``InputError``."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(
            f"{where}: name {name!r} is not a valid key (letters, digits and _, "
            "starting with a letter)"
        )
    return name


def is_attribute(name: str) -> bool:
    """Whether a pydantic model can have a field attribute called ``name``: not a Python
    keyword (``class``, ``None``) and not one of pydantic's own (``model_dump``, ``copy``)."""
    return not (keyword.iskeyword(name) or name.startswith("model_") or hasattr(BaseModel, name))
