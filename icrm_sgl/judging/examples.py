"""Reading examples from .json / .jsonl files, naming each, and matching each to its judge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.judges import Judge, default_judge, judge_for
from icrm_sgl.judges.inputs import check_one_form
from icrm_sgl.plumbing.conversation import check_text
from icrm_sgl.plumbing.records import read_records


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


def load_examples(path: str | Path, limit: int | None = None, noun: str = "example") -> ExampleFile:
    """A .json file (one example or a list) or a .jsonl file (one example per line).

    ``limit`` keeps the first N entries (a .jsonl file is read no further); ``noun``
    names an entry of a .json list in messages (``example 3``, ``item 3``). A .jsonl line
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
        _entry(r.place(noun), r.place() if r.line else str(r.index), r.value) for r in read.records
    ]
    return ExampleFile(entries, read.errors, single=read.single)


def detect_rm_type(examples: list[Any]) -> str:
    """The built-in judge of the first example whose keys name one (a shots pool's mode)."""
    for example in examples:
        name = judge_for(example) if isinstance(example, dict) else None
        if name is not None:
            return name
    raise InputError(UNKNOWN_MODE)


def check_id(own_id: Any, where: str) -> None:
    """An example's own id, when it has one: a string or an integer, and valid Unicode
    (it is echoed in every output)."""
    if own_id is None:
        return
    if isinstance(own_id, bool) or not isinstance(own_id, str | int):
        raise InputError(f"{where}: id must be a string or an integer, got {own_id!r}")
    check_text(str(own_id), f"{where}: id")


def _structure_problem(entry: Entry) -> str | None:
    record = entry.record
    if not isinstance(record, dict):
        return f"{entry.where}: expected an example object, got {type(record).__name__}"
    try:
        check_id(record.get("id"), entry.where)
        check_one_form(record, entry.where)
    except InputError as exc:
        return str(exc)
    return None


#: Examples judged by one judge, in file order.
Group = tuple[Judge, list[dict[str, Any]]]

UNKNOWN_MODE = (
    "cannot tell the judging mode: give 'conversation' (individual) or 'conversation_A' "
    "and 'conversation_B' (pairwise), or pass --rm-type or --judge"
)


def screen_examples(
    loaded: ExampleFile, judge: Judge | None
) -> tuple[list[Group], list[tuple[str, str]]]:
    """Check every entry before any model call.

    Returns the valid examples (``id`` set) grouped by the judge that judges them, and
    ``(id, message)`` for the others. Without a judge each example goes to the built-in
    judge its keys are meant for, so a file may mix individual and pairwise examples.
    """
    failures = list(loaded.errors)
    groups: dict[str, Group] = {}
    for entry in loaded.entries:
        problem = _structure_problem(entry)
        if problem:
            failures.append((entry.id, problem))
            continue
        name = judge_for(entry.record) if judge is None else judge.name
        if name is None:
            failures.append((entry.id, f"{entry.where}: {UNKNOWN_MODE}"))
            continue
        chosen = judge or default_judge(name)
        try:
            chosen.example_fields(entry.record, entry.where)
        except InputError as exc:
            failures.append((entry.id, str(exc)))
            continue
        groups.setdefault(name, (chosen, []))[1].append({**entry.record, "id": entry.id})
    return list(groups.values()), failures
