"""The one reader of record files: JSON, JSON Lines and parquet.

Inputs, labelled pairs, shot pools and stored results are all read here, so that every
file problem reads the same (``NAME: line N: invalid JSON (…)``) and every line number is
the line a text editor shows: blank lines count, a byte-order mark is dropped, a CRLF
ending is one line break, and nothing else (not ``\\x0b`` or ``\\u2028``) splits a line.
A structure nested too deeply to parse is one error, never a ``RecursionError``; only a
regular file within a size limit is read (``files.open_input``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from icrm_sgl.errors import InputError, MissingDependencyError
from icrm_sgl.plumbing.files import (
    BoundedFile,
    SizeLimit,
    decode,
    deep_parse,
    memory_error,
    open_input,
)

#: File suffixes read as one JSON document, as one JSON value per line, or as parquet.
JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)


@dataclass(frozen=True)
class Record:
    """One value of a file: its position among the records and, in JSON Lines, its line."""

    index: int
    value: Any
    line: int | None = None

    def place(self, noun: str = "record") -> str:
        """``line 4`` in a JSON Lines file, else ``record 3`` (or the caller's noun)."""
        return f"line {self.line}" if self.line is not None else f"{noun} {self.index}"


@dataclass(frozen=True)
class RecordFile:
    """What a file held: its records, the lines that could not be read (only when the
    caller asked to skip them, as ``(place, message)``, the message naming the file and
    the line), and whether a JSON file held one object rather than a list."""

    records: list[Record]
    errors: list[tuple[str, str]] = field(default_factory=list)
    single: bool = False

    @property
    def values(self) -> list[Any]:
        return [r.value for r in self.records]


def loads(text: str | bytes, where: str) -> Any:
    """One JSON value (bytes must be UTF-8); an ``InputError`` naming ``where`` instead of
    the parser's own exceptions, a structure nested too deeply included."""
    try:
        with deep_parse():
            return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise InputError(f"{where}: invalid JSON (nested too deeply to read)") from None


def _name(path: Path, label: str) -> str:
    return f"{label} {path}".strip()


def _read_json(source: BoundedFile, name: str, limit: int | None, skip_bad: bool) -> RecordFile:
    text = decode(source.read(), name)
    if not text.strip():
        return RecordFile([])
    try:
        with deep_parse():
            data = json.loads(text)
    except json.JSONDecodeError as exc:
        line, column = _position(text, exc.pos)
        raise InputError(
            f"{name}: line {line}: invalid JSON ({exc.msg}, column {column})"
        ) from None
    except RecursionError:
        raise InputError(f"{name}: invalid JSON (nested too deeply to read)") from None
    if isinstance(data, list):
        return RecordFile([Record(i, value) for i, value in enumerate(data[:limit])])
    return RecordFile([Record(0, data)], single=True)


def _position(text: str, pos: int) -> tuple[int, int]:
    """The line and column of ``text[pos]`` as an editor shows them: CRLF, CR and LF each
    end a line (the parser counts LF only; the text is not rewritten to spare a copy)."""
    head = text[:pos]
    line = head.count("\n") + head.count("\r") - head.count("\r\n") + 1
    start = max(head.rfind("\n"), head.rfind("\r")) + 1
    return line, pos - start + 1


def _lines(source: BoundedFile) -> Iterator[tuple[int, bytes]]:
    """Numbered non-blank lines, split on ``\\n`` only (so CRLF is one break)."""
    for number, raw in enumerate(source.lines(), start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.strip():
            yield number, raw


def _read_jsonl(source: BoundedFile, name: str, limit: int | None, skip_bad: bool) -> RecordFile:
    records: list[Record] = []
    errors: list[tuple[str, str]] = []
    for number, raw in islice(_lines(source), limit):
        place = f"line {number}"
        try:
            value = loads(raw, f"{name}: {place}")
        except InputError as exc:
            if not skip_bad:
                raise
            errors.append((place, str(exc)))
            continue
        records.append(Record(len(records), value, number))
    return RecordFile(records, errors)


def _read_parquet(source: BoundedFile, name: str, limit: int | None, skip_bad: bool) -> RecordFile:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError(
            f"{name}: reading parquet needs pyarrow (pip install pyarrow)"
        ) from exc
    data = source.read()
    try:
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise InputError(f"{name}: cannot read parquet ({short(exc)})") from exc
    return RecordFile([Record(i, row) for i, row in enumerate(rows[:limit])])


Reader = Callable[[BoundedFile, str, int | None, bool], RecordFile]

_READERS: dict[str, Reader] = {
    **dict.fromkeys(JSON_SUFFIXES, _read_json),
    **dict.fromkeys(JSONL_SUFFIXES, _read_jsonl),
    **dict.fromkeys(PARQUET_SUFFIXES, _read_parquet),
}


def _find_reader(source: Path, default: str | None) -> Reader | None:
    return _READERS.get(source.suffix.lower(), _READERS.get(default or ""))


def _reader(source: Path, name: str, default: str | None) -> Reader:
    reader = _find_reader(source, default)
    if reader is None:
        raise InputError(
            f"{name}: unsupported file type {source.suffix!r}; expected {', '.join(_READERS)}"
        )
    return reader


def read_records(
    path: str | Path,
    label: str = "",
    *,
    limit: int | None = None,
    skip_bad_lines: bool = False,
    default: str | None = ".json",
    size: SizeLimit | None = None,
) -> RecordFile:
    """The records of a file, by its suffix (others are read as ``default``, or refused
    when it is None).

    ``limit`` keeps the first N records (a JSON Lines file is read no further);
    ``skip_bad_lines`` reports a JSON Lines line that is not UTF-8 JSON in ``errors``
    and reads on, instead of failing the whole file. Only a regular file within ``size``
    (default: the data-file limit, see ``files.data_limit``) is read; a JSON Lines file
    read up to ``limit`` may be larger, as long as its first N records are within it.
    """
    source = Path(path)
    name = _name(source, label)
    partial = limit is not None and _find_reader(source, default) is _read_jsonl
    with open_input(source, label, size, partial=partial) as handle:
        reader = _reader(source, name, default)
        try:
            return reader(handle, name, limit, skip_bad_lines)
        except MemoryError:  # parsing too: the values take more room than the text
            raise memory_error(name) from None


def short(exc: BaseException) -> str:
    """The first line of an exception's text, at most 160 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
