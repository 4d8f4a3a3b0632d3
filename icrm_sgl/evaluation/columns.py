"""Preference files with their own field names: a column mapping onto labelled pairs.

``prompt=instruction,input=context,a=response_1,b=response_2,label=preference`` says
which field holds what. The instruction and an optional input are joined into the user
turn. A label is 1 / "A" (the first reply is better), 2 / "B", or 0 / "tie"; a list of
labels, or several label columns (``label=annotator1+annotator2+annotator3``, or ``label=``
given once per column), is decided by the most common label, and a draw between the most
common labels is a tie. Ties stay in the data as ties.

``prompt=instruction,reply=response,score=orig_score`` reads one reply per record with a
human score (a number) instead, as Prometheus' Feedback Bench keeps them. A name that is
one of the judge's inputs (``reference=answer``) fills that input from the field.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from icrm_sgl.errors import InputError
from icrm_sgl.plumbing.conversation import validate_conversation, validate_pair

#: Accepted label spellings -> "A", "B" or "tie".
LABELS: dict[Any, str] = {
    1: "A",
    "1": "A",
    "A": "A",
    "a": "A",
    2: "B",
    "2": "B",
    "B": "B",
    "b": "B",
    0: "tie",
    "0": "tie",
    "tie": "tie",
}


class ColumnMap(BaseModel):
    """Which record field holds each part of a labelled pair."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    a: str
    b: str
    label: str
    input: str | None = None
    id: str | None = None
    subset: str | None = None
    #: The judge's inputs read from a field: input name -> field.
    inputs: dict[str, str] = {}

    @property
    def label_fields(self) -> list[str]:
        """The label column(s): several annotators' columns are joined with ``+``."""
        return [f.strip() for f in self.label.split("+")]


class ScoreColumns(BaseModel):
    """Which record field holds each part of a reply with a human score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    reply: str
    score: str
    input: str | None = None
    id: str | None = None
    subset: str | None = None
    inputs: dict[str, str] = {}


def parse_columns(
    spec: str | Mapping[str, str] | ColumnMap | ScoreColumns, inputs: Collection[str] = ()
) -> ColumnMap | ScoreColumns:
    """A ``ColumnMap`` from ``"prompt=…,a=…,b=…,label=…"`` text or a dict, or a
    ``ScoreColumns`` when it names a ``score``; names in ``inputs`` (a judge's inputs)
    map fields onto those inputs."""
    if isinstance(spec, ColumnMap | ScoreColumns):
        return spec
    items = _column_items(spec) if isinstance(spec, str) else dict(spec)
    kind: type[ColumnMap | ScoreColumns] = ScoreColumns if "score" in items else ColumnMap
    own = {k: v for k, v in items.items() if k in kind.model_fields or k not in inputs}
    extra = {k: v for k, v in items.items() if k not in own}
    try:
        return kind.model_validate({**own, "inputs": extra})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'columns'}: {e['msg']}" for e in exc.errors()
        )
        names = "prompt, input, a, b, label, id, subset; or prompt, input, reply, score, id, subset"
        raise InputError(f"--columns: {problems} (names: {names})") from None


def scores_replies(spec: str | Mapping[str, str] | ColumnMap | ScoreColumns) -> bool:
    """Whether a column mapping reads replies with human scores (it names a ``score``)."""
    if isinstance(spec, ColumnMap | ScoreColumns):
        return isinstance(spec, ScoreColumns)
    return "score" in (_column_items(spec) if isinstance(spec, str) else spec)


def _column_items(spec: str) -> dict[str, str]:
    """``NAME=FIELD`` pairs of the text form; ``label`` may be given once per column."""
    items: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = (x.strip() for x in part.partition("="))
        if not sep or not key or not value:
            raise InputError(f"--columns: expected NAME=FIELD, got {part!r}")
        if key in items and key != "label":
            raise InputError(f"--columns: {key} given twice")
        items[key] = f"{items[key]}+{value}" if key in items else value
    return items


def _one_label(value: Any, where: str) -> str:
    key = value.strip() if isinstance(value, str) else value
    if isinstance(key, bool) or not isinstance(key, int | str) or key not in LABELS:
        raise InputError(f"{where}: label must be 1/2/0, A/B or tie, got {value!r}")
    return LABELS[key]


def majority_label(value: Any, where: str) -> str:
    """One label, or the most common of several annotators' ("tie" on a draw)."""
    if not isinstance(value, list | tuple):
        return _one_label(value, where)
    if not value:
        raise InputError(f"{where}: empty list of labels")
    counts = Counter(_one_label(v, where) for v in value).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return "tie"
    return counts[0][0]


def _labels(record: Mapping[str, Any], fields: list[str], where: str) -> Any:
    """The label of one column as it is, or every label of several columns in one list."""
    for field in fields:
        if field not in record:
            raise InputError(f"{where}: missing field {field!r}")
    if len(fields) == 1:
        return record[fields[0]]
    values = [record[f] for f in fields]
    return [v for value in values for v in (value if isinstance(value, list) else [value])]


def _text(record: Mapping[str, Any], field: str, where: str) -> str:
    if field not in record:
        raise InputError(f"{where}: missing field {field!r}")
    value = record[field]
    if not isinstance(value, str):
        raise InputError(f"{where}: field {field!r} must be text, got {type(value).__name__}")
    return value


def mapped_inputs(
    record: Mapping[str, Any], names: Collection[str], columns: Mapping[str, str]
) -> dict[str, Any]:
    """The judge's inputs a record holds: each from its mapped field, else the field of
    the same name; an input the record lacks is left out (the judge's check names it)."""
    fields = {name: columns.get(name, name) for name in names}
    return {name: record[field] for name, field in fields.items() if field in record}


def human_score(value: Any, where: str) -> float:
    """A human score: a finite number, or text that spells one."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InputError(f"{where}: score must be a finite number, got {value!r}")
    return number


def _where(record: Mapping[str, Any], place: str, columns: ColumnMap | ScoreColumns) -> str:
    if columns.id is not None and columns.id in record:
        return f"{place} (id {record[columns.id]!r})"
    return place


def _user(record: Mapping[str, Any], columns: ColumnMap | ScoreColumns, where: str) -> str:
    """The user turn: the prompt, and the optional input after a blank line."""
    user = _text(record, columns.prompt, where)
    if columns.input is not None and record.get(columns.input):
        user = f"{user}\n\n{_text(record, columns.input, where)}"
    return user


def _id_subset(
    record: Mapping[str, Any],
    index: int,
    columns: ColumnMap | ScoreColumns,
    subset: str,
    where: str,
) -> tuple[str, str]:
    rid = str(record[columns.id]) if columns.id is not None and columns.id in record else str(index)
    if columns.subset is not None and columns.subset in record:
        subset = _text(record, columns.subset, where) or subset
    return rid, subset


def mapped_reply(
    record: Mapping[str, Any], index: int, place: str, columns: ScoreColumns, subset: str
) -> tuple[str, str, list[dict[str, str]], float]:
    """(id, subset, conversation, human score) of one record of replies with scores."""
    where = _where(record, place, columns)
    user = _user(record, columns, where)
    if columns.score not in record:
        raise InputError(f"{where}: missing field {columns.score!r}")
    score = human_score(record[columns.score], where)
    reply = _text(record, columns.reply, where)
    turns = [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    conversation = validate_conversation(turns, where)
    return (*_id_subset(record, index, columns, subset, where), conversation, score)


def mapped_pair(
    record: Mapping[str, Any], index: int, place: str, columns: ColumnMap, subset: str
) -> tuple[str, str, list[dict[str, str]], list[dict[str, str]], str]:
    """(id, subset, conversation A, conversation B, label) of one record; errors name it
    by ``place`` (``FILE: line 4`` in JSON Lines, else ``SOURCE: record 3``)."""
    where = _where(record, place, columns)
    user = _user(record, columns, where)
    label = majority_label(_labels(record, columns.label_fields, where), where)
    a, b = (
        [
            {"role": "user", "content": user},
            {"role": "assistant", "content": _text(record, f, where)},
        ]
        for f in (columns.a, columns.b)
    )
    a, b = validate_pair(a, b, where)
    return (*_id_subset(record, index, columns, subset, where), a, b, label)
