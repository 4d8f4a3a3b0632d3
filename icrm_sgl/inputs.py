"""Reading examples from .json / .jsonl files, naming each, and detecting the judging mode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from icrm_sgl.conversation import check_text
from icrm_sgl.errors import InputError
from icrm_sgl.files import read_text
from icrm_sgl.programs.prompts import check_one_form, example_fields


@dataclass(frozen=True)
class Entry:
    """One record of an input file, with where it is (``line 4 (id a)``) and its id."""

    where: str
    id: str
    record: Any


@dataclass(frozen=True)
class ExampleFile:
    """The entries of one input file; .jsonl lines that could not be parsed are kept as
    ``(id, message)`` errors."""

    entries: list[Entry]
    errors: list[tuple[str, str]]
    single: bool

    @property
    def examples(self) -> list[Any]:
        return [entry.record for entry in self.entries]


def _entry(place: str, default_id: str, record: Any) -> Entry:
    own_id = record.get("id") if isinstance(record, dict) else None
    if own_id is None:
        return Entry(place, default_id, record)
    shown = str(own_id).encode("utf-8", "backslashreplace").decode("utf-8")
    return Entry(f"{place} (id {shown})", shown, record)


def load_examples(path: str | Path, limit: int | None = None) -> ExampleFile:
    """A .json file (one example or a list) or a .jsonl file (one example per line).

    ``limit`` keeps the first N entries (a .jsonl file is read no further). A .jsonl line
    that is not UTF-8 JSON is reported in ``errors`` with its line number; the other lines
    still load. A file with no examples at all is an ``InputError``.
    """
    path = Path(path)
    loaded = _load_jsonl(path, limit) if path.suffix == ".jsonl" else _load_json(path, limit)
    if not loaded.entries and not loaded.errors:
        raise InputError(f"{path}: no examples to judge (the file holds none)")
    return loaded


def _load_json(path: Path, limit: int | None) -> ExampleFile:
    text = read_text(path)
    if not text.strip():
        return ExampleFile([], [], single=False)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if isinstance(data, dict):
        return ExampleFile([_entry("example 0", "0", data)], [], single=True)
    if isinstance(data, list):
        entries = [_entry(f"example {i}", str(i), r) for i, r in enumerate(data[:limit])]
        return ExampleFile(entries, [], single=False)
    raise InputError(f"{path}: expected an example object or a list of them")


def _load_jsonl(path: Path, limit: int | None) -> ExampleFile:
    entries: list[Entry] = []
    errors: list[tuple[str, str]] = []
    try:
        with path.open("rb") as handle:
            numbered = ((n, raw) for n, raw in enumerate(handle, start=1) if raw.strip())
            for lineno, raw in islice(numbered, limit):
                place = f"line {lineno}"
                try:
                    record = json.loads(raw.decode("utf-8-sig" if lineno == 1 else "utf-8"))
                except UnicodeDecodeError:
                    errors.append((place, f"{place}: not UTF-8 text"))
                    continue
                except json.JSONDecodeError as exc:
                    errors.append((place, f"{place}: invalid JSON ({exc.msg})"))
                    continue
                entries.append(_entry(place, place, record))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return ExampleFile(entries, errors, single=False)


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


def _structure_problem(entry: Entry) -> str | None:
    record = entry.record
    if not isinstance(record, dict):
        return f"{entry.where}: expected an example object, got {type(record).__name__}"
    own_id = record.get("id")
    if own_id is not None and (isinstance(own_id, bool) or not isinstance(own_id, str | int)):
        return f"{entry.where}: id must be a string or an integer, got {own_id!r}"
    try:
        check_text(str(own_id or ""), f"{entry.where}: id")
        check_one_form(record, entry.where)
    except InputError as exc:
        return str(exc)
    return None


def screen_examples(
    loaded: ExampleFile, rm_type: str | None
) -> tuple[str | None, list[dict[str, Any]], list[tuple[str, str]]]:
    """Check every entry before any model call.

    Returns the judging mode (detected unless given; None when no entry is an object),
    the valid examples with their ``id`` set, and ``(id, message)`` for the others.
    """
    failures = list(loaded.errors)
    objects: list[Entry] = []
    for entry in loaded.entries:
        problem = _structure_problem(entry)
        if problem:
            failures.append((entry.id, problem))
        else:
            objects.append(entry)
    if not objects:
        return rm_type, [], failures
    rm_type = rm_type or detect_rm_type([e.record for e in objects])
    valid = []
    for entry in objects:
        try:
            example_fields(rm_type, entry.record, entry.where)
        except InputError as exc:
            failures.append((entry.id, str(exc)))
            continue
        valid.append({**entry.record, "id": entry.id})
    return rm_type, valid, failures
