"""Judges: a verdict model, a prompt template and optionally shots (see ``Judge``).

``builtin_judge("individual" | "pairwise")`` gives the two built-in judges,
``load_rubric(path)`` a judge written as a TOML rubric, ``make_judge`` one from a pydantic
model and a template, and ``as_judge`` whichever of these a caller passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.judges.builtin import BUILTINS, builtin_judge
from icrm_sgl.judges.fields import FieldSpec
from icrm_sgl.judges.judge import Judge, PairSpec

#: The built-in judges' names, in the order a mixed file is matched against them.
BUILTIN_NAMES: tuple[str, ...] = tuple(BUILTINS)


@cache
def default_judge(name: str) -> Judge:
    """A built-in judge with its packaged templates and shots (built once)."""
    return builtin_judge(name)


def as_judge(judge: Judge | str | Path) -> Judge:
    """A ``Judge`` from a judge, a built-in judge's name, or a rubric file's path."""
    if isinstance(judge, Judge):
        return judge
    if isinstance(judge, str) and judge in BUILTINS:
        return default_judge(judge)
    if isinstance(judge, str | Path) and str(judge).endswith(".toml"):
        from icrm_sgl.judges.rubric import load_rubric

        return load_rubric(judge)
    raise InputError(
        f"unknown judge {str(judge)!r}: expected one of {', '.join(BUILTINS)}, a rubric .toml "
        "file or a Judge"
    )


def judge_for(example: Mapping[str, Any]) -> str | None:
    """The built-in judge an example's keys are meant for (None when none matches)."""
    keys = set(example)
    for name in reversed(BUILTIN_NAMES):  # pairwise keys take precedence, as in serve
        if BUILTINS[name].inputs.marks & keys:
            return name
    return None


def make_judge(model: type, template: str, **options: Any) -> Judge:
    """A judge from a pydantic verdict model and a template text (see ``judges.rubric``)."""
    from icrm_sgl.judges.rubric import judge_from_model

    return judge_from_model(model, template, **options)


__all__ = [
    "BUILTIN_NAMES",
    "FieldSpec",
    "Judge",
    "PairSpec",
    "as_judge",
    "builtin_judge",
    "default_judge",
    "judge_for",
    "make_judge",
]
