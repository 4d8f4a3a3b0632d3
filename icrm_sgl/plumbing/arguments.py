"""Checks on what Python callers pass to ``ICRM``: generation options and examples.

The bounds are the command line's (``--max-tokens`` ≥ 1, ``--temperature`` ≥ 0,
``--top-p`` in [0, 1]), so the API and the CLI accept the same values; anything else is
an ``InputError`` naming the option, never a ``TypeError`` from deep inside an engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from icrm_sgl.errors import InputError


class GenerationOptions(BaseModel):
    """The generation keywords a call accepts, with their defaults (greedy decoding)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    top_p: float = Field(1.0, ge=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)


def check_generation(kwargs: Mapping[str, Any], ignored: Iterable[str] = ()) -> dict[str, Any]:
    """Validate generation keywords (``ignored`` ones are dropped); all values, defaults
    filled in, or an ``InputError`` naming the first bad option."""
    given = {k: v for k, v in kwargs.items() if k not in set(ignored)}
    unknown = set(given) - set(GenerationOptions.model_fields)
    if unknown:
        raise InputError(
            f"unknown generation option(s) {sorted(unknown)}; "
            f"accepted: {sorted(GenerationOptions.model_fields)}"
        )
    try:
        return GenerationOptions(**given).model_dump()
    except ValidationError as exc:
        raise InputError(validation_message(exc, given, "generation")) from exc


def validation_message(exc: ValidationError, given: Mapping[str, Any], owner: str) -> str:
    """The first problem of ``owner``'s settings in one line: a check's own words, else
    the setting, what is wrong and the value ``given``."""
    first = exc.errors()[0]
    if first["type"] == "value_error":
        return str(first["ctx"]["error"])
    name = str(first["loc"][0])  # a setting's name: the models have no list fields at the top
    if first["type"] == "extra_forbidden":
        return f"{owner} has no setting {name!r}"
    return f"{name}: {first['msg'].lower()}, got {given[name]!r}"


def check_count(name: str, value: Any) -> int:
    """A whole number ≥ 0 (``num_shots``, ``n_seq``): not text, a fraction or a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{name} must be a whole number ≥ 0, got {value!r}")
    return value


def check_example(example: Any, where: str = "example") -> Mapping[str, Any]:
    """An example must be a mapping (``{"conversation": ...}`` or the A/B pair)."""
    if not isinstance(example, Mapping):
        raise InputError(
            f"{where}: expected an object with 'conversation' or 'conversation_A' and "
            f"'conversation_B', got {type(example).__name__}"
        )
    return example


def check_examples(examples: Any) -> Iterable[Any]:
    """``judge_batch`` takes an iterable of examples: not one example, text, or a number."""
    if isinstance(examples, Mapping):
        raise InputError("judge_batch takes a list of examples; use judge() for one example")
    if isinstance(examples, str | bytes) or not isinstance(examples, Iterable):
        kind = type(examples).__name__
        raise InputError(f"examples must be a list of example objects, got {kind}")
    return examples
