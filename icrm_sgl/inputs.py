"""Reading examples from .json / .jsonl files and detecting the judging mode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icrm_sgl.errors import InputError


@dataclass(frozen=True)
class ExampleFile:
    """The examples of one input file; lines that could not be parsed are kept as errors."""

    examples: list[dict[str, Any]]
    errors: list[tuple[str, str]]
    single: bool


def load_examples(path: str | Path) -> ExampleFile:
    """A .json file (one example or a list) or a .jsonl file (one example per line).

    A .jsonl line that is not valid JSON is reported in ``errors`` with its line number;
    the other lines still load.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text") from exc
    if path.suffix == ".jsonl":
        return _load_jsonl(path, text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if isinstance(data, dict):
        return ExampleFile([data], [], single=True)
    if isinstance(data, list):
        return ExampleFile(data, [], single=False)
    raise InputError(f"{path}: expected an example object or a list of them")


def _load_jsonl(path: Path, text: str) -> ExampleFile:
    examples, errors = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append((f"line {lineno}", f"{path}:{lineno}: invalid JSON ({exc.msg})"))
            continue
        if isinstance(record, dict):
            record.setdefault("id", f"line {lineno}")
        examples.append(record)
    return ExampleFile(examples, errors, single=False)


def detect_rm_type(examples: list[Any]) -> str:
    """'pairwise' when examples carry conversation_A/B, 'individual' for conversation."""
    for example in examples:
        if isinstance(example, dict):
            if "conversation_A" in example or "conversation_B" in example:
                return "pairwise"
            if "conversation" in example:
                return "individual"
    raise InputError(
        "cannot tell the judging mode: examples need 'conversation' (individual) or "
        "'conversation_A' and 'conversation_B' (pairwise); or pass --rm-type"
    )
