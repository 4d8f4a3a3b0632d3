"""Reading examples from .json / .jsonl files, naming each, and detecting the judging mode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icrm_sgl.conversation import check_text
from icrm_sgl.errors import InputError
from icrm_sgl.programs.prompts import check_one_form, example_fields
from icrm_sgl.records import read_records


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
    read = read_records(path, limit=limit, skip_bad_lines=True)
    if read.single and not isinstance(read.records[0].value, dict):
        raise InputError(f"{path}: expected an example object or a list of them")
    if not read.records and not read.errors:
        raise InputError(f"{path}: no examples to judge (the file holds none)")
    entries = [
        _entry(r.place("example"), r.place() if r.line else str(r.index), r.value)
        for r in read.records
    ]
    return ExampleFile(entries, read.errors, single=read.single)


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
