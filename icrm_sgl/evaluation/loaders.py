"""Load labelled preference pairs (RewardBench, LLMBar or our own pairs format).

Every record is checked before any judging starts: a malformed record fails the whole load
with a message naming the file and the record, because an evaluation that silently skips
data reports a number for a different data set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from icrm_sgl.errors import InputError, MissingDependencyError
from icrm_sgl.evaluation.columns import (
    ColumnMap,
    ScoreColumns,
    mapped_inputs,
    mapped_pair,
    mapped_reply,
    parse_columns,
)
from icrm_sgl.plumbing.conversation import Turn, validate_pair
from icrm_sgl.plumbing.records import (
    JSON_SUFFIXES,
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    Record,
    read_records,
    short,
)


@dataclass(frozen=True)
class LabelledPair:
    """Two conversations with the same history; ``chosen`` ends with the better reply
    (with ``tie``, the annotators judged them equal: ``chosen`` is the first reply)."""

    id: str
    subset: str
    chosen: list[dict[str, str]]
    rejected: list[dict[str, str]]
    tie: bool = False
    group: str | None = None  # best-of-N: the prompt whose chosen reply must beat every other
    #: A judge's inputs the record holds besides the conversation (``reference``, …).
    inputs: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ScoredReply:
    """One conversation whose last reply a person scored (``score``, a number)."""

    id: str
    subset: str
    conversation: list[dict[str, str]]
    score: float
    inputs: dict[str, Any] = field(default_factory=dict, hash=False)


FORMATS = ("rewardbench", "rewardbench2", "llmbar", "pairs")

#: Keys a record must have in each format (``pairs`` also takes optional subset and id).
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "rewardbench": ("id", "prompt", "chosen", "rejected", "subset"),
    "rewardbench2": ("id", "prompt", "chosen", "rejected", "subset"),
    "llmbar": ("input", "output_1", "output_2", "label"),
    "pairs": ("conversation_A", "conversation_B", "label"),
}

#: Keys that identify a format in detection (RewardBench's id/subset are then required).
_SIGNATURE_KEYS: dict[str, tuple[str, ...]] = {
    "rewardbench": ("prompt", "chosen", "rejected"),
    "llmbar": ("input", "output_1", "output_2"),
    "pairs": ("conversation_A", "conversation_B"),
}

_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_FILE_SUFFIXES = JSON_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
_LLMBAR_FILE = "dataset.json"


# ----------------------------------------------------------------------------- detection


def _expected_keys() -> str:
    return "; ".join(f"{fmt}: {', '.join(keys)}" for fmt, keys in REQUIRED_KEYS.items())


def detect_format(records: list[dict], where: str = "records") -> str:
    """Guess the format from the first record's keys, so users need not name it."""
    if not records:
        raise InputError(f"{where}: no records")
    first = records[0]
    if not isinstance(first, dict):
        raise InputError(f"{where}: record 0 is {type(first).__name__}, expected an object")
    for fmt in _SIGNATURE_KEYS:
        if set(_SIGNATURE_KEYS[fmt]) <= set(first):
            # RewardBench 2 has RewardBench's keys, with lists of replies
            return "rewardbench2" if isinstance(first.get("chosen"), list) else fmt
    raise InputError(
        f"{where}: unknown record format (keys: {', '.join(sorted(map(str, first)))}); "
        f"expected one of {', '.join(FORMATS)} with keys {_expected_keys()}, "
        "or name your fields with --columns"
    )


def _check_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------- reading


def _read_records(path: Path) -> list[Record]:
    """The record objects of a .json (a list), .jsonl / .ndjson or .parquet file."""
    read = read_records(path, default=None)
    if read.single:
        kind = type(read.records[0].value).__name__
        raise InputError(f"{path}: expected a JSON list of records, got {kind}")
    if not read.records:
        raise InputError(f"{path}: no records")
    for record in read.records:
        if not isinstance(record.value, dict):
            kind = type(record.value).__name__
            raise InputError(f"{path}: {record.place()} is {kind}, expected an object")
    return read.records


# ----------------------------------------------------------------------------- records


def _where(place: str, record: dict[str, Any]) -> str:
    rid = record.get("id")
    return place + (f" (id {rid!r})" if rid is not None else "")


def _require(record: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise InputError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")


def _single_turn(prompt: Any, reply: Any) -> list[Turn]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]


def _text_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"{where}: id must be a string or an integer, got {value!r}")
    return str(value)


def _text_subset(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: subset must be a non-empty string, got {value!r}")
    return value


def _from_rewardbench(record: dict[str, Any], index: int, place: str) -> LabelledPair:
    """A RewardBench record: one user prompt and two candidate replies."""
    where = _where(place, record)
    _require(record, REQUIRED_KEYS["rewardbench"], where)
    chosen, rejected = validate_pair(
        _single_turn(record["prompt"], record["chosen"]),
        _single_turn(record["prompt"], record["rejected"]),
        where,
    )
    return LabelledPair(
        id=_text_id(record["id"], where),
        subset=_text_subset(record["subset"], where),
        chosen=chosen,
        rejected=rejected,
    )


def _replies(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: {key!r} must be a non-empty list of replies")
    return value


def _from_rewardbench2(record: dict[str, Any], index: int, place: str) -> list[LabelledPair]:
    """A RewardBench 2 record (best-of-N): every chosen reply against every rejected one,
    grouped by the record so that it counts once, as right only if all its pairs are."""
    where = _where(place, record)
    _require(record, REQUIRED_KEYS["rewardbench2"], where)
    rid = _text_id(record["id"], where)
    subset = _text_subset(record["subset"], where)
    chosen = _replies(record["chosen"], "chosen", where)
    rejected = _replies(record["rejected"], "rejected", where)
    pairs = []
    for c, good in enumerate(chosen):
        for r, bad in enumerate(rejected):
            one, two = validate_pair(
                _single_turn(record["prompt"], good),
                _single_turn(record["prompt"], bad),
                f"{where}: chosen {c} vs rejected {r}",
            )
            pair_id = f"{rid}/{r}" if len(chosen) == 1 else f"{rid}/{c}-{r}"
            pairs.append(LabelledPair(pair_id, subset, one, two, group=rid))
    return pairs


def _from_llmbar(record: dict[str, Any], index: int, place: str, subset: str) -> LabelledPair:
    """An LLMBar record: label 1 means output_1 is the better reply."""
    where = place
    _require(record, REQUIRED_KEYS["llmbar"], where)
    label = record["label"]
    if isinstance(label, bool) or label not in (1, 2):
        raise InputError(f"{where}: label must be 1 or 2, got {label!r}")
    one, two = validate_pair(
        _single_turn(record["input"], record["output_1"]),
        _single_turn(record["input"], record["output_2"]),
        where,
    )
    chosen, rejected = (one, two) if label == 1 else (two, one)
    return LabelledPair(id=f"{subset}/{index}", subset=subset, chosen=chosen, rejected=rejected)


def _from_pairs(record: dict[str, Any], index: int, place: str) -> LabelledPair:
    """Our own format: two conversations and which one ("A" or "B") is better."""
    where = _where(place, record)
    _require(record, REQUIRED_KEYS["pairs"], where)
    label = record["label"]
    if label not in ("A", "B"):
        raise InputError(f"{where}: label must be 'A' or 'B', got {label!r}")
    a, b = validate_pair(record["conversation_A"], record["conversation_B"], where)
    chosen, rejected = (a, b) if label == "A" else (b, a)
    return LabelledPair(
        id=_text_id(record.get("id", str(index)), where),
        subset=_text_subset(record.get("subset", "default"), where),
        chosen=chosen,
        rejected=rejected,
    )


def _convert(
    records: list[Record], fmt: str, source: str, subset: str, inputs: Collection[str] = ()
) -> list[LabelledPair]:
    """Each record as pairs, with the ``inputs`` (a judge's) it holds in fields of their
    names; errors name it by ``SOURCE: line N`` (JSON Lines) or ``SOURCE: record N``."""
    pairs: list[LabelledPair] = []
    for r in records:
        place = f"{source}: {r.place()}"
        if fmt == "rewardbench":
            converted = [_from_rewardbench(r.value, r.index, place)]
        elif fmt == "rewardbench2":
            converted = _from_rewardbench2(r.value, r.index, place)
        elif fmt == "llmbar":
            converted = [_from_llmbar(r.value, r.index, place, subset)]
        else:
            converted = [_from_pairs(r.value, r.index, place)]
        held = mapped_inputs(r.value, inputs, {})
        pairs.extend(replace(p, inputs=held) for p in converted)
    return pairs


def _check_unique(pairs: Sequence[LabelledPair | ScoredReply], source: str) -> None:
    """Ids key the result store and resuming, so two pairs may never share one."""
    seen: dict[str, int] = {}
    for index, pair in enumerate(pairs):
        if pair.id in seen:
            raise InputError(
                f"{source}: duplicate id {pair.id!r} (records {seen[pair.id]} and {index})"
            )
        seen[pair.id] = index


# ----------------------------------------------------------------------------- sources


def _load_llmbar_folder(folder: Path, inputs: Collection[str]) -> list[LabelledPair]:
    """Every dataset.json under the folder; subset = its folder relative to ``folder``."""
    files = sorted(folder.rglob(_LLMBAR_FILE))
    if not files:
        raise InputError(f"{folder}: no {_LLMBAR_FILE} found in this folder or below it")
    pairs: list[LabelledPair] = []
    for path in files:
        relative = path.parent.relative_to(folder).as_posix()
        subset = folder.name if relative == "." else relative
        pairs.extend(_convert(_read_records(path), "llmbar", str(path), subset, inputs))
    return pairs


def _load_file(path: Path, fmt: str | None, inputs: Collection[str]) -> list[LabelledPair]:
    records = _read_records(path)
    fmt = fmt or detect_format([r.value for r in records], str(path))
    return _convert(records, fmt, str(path), path.resolve().parent.name, inputs)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _hub_failure(name: str, reason: str) -> InputError:
    return InputError(
        f"cannot load dataset {name!r} from the Hugging Face hub ({reason}); "
        "download it and pass the file path"
    )


def _read_hub(name: str, split: str) -> list[dict[str, Any]]:
    """Records of a Hugging Face dataset split; fails fast when the hub is out of reach."""
    if _offline():
        raise _hub_failure(name, "HF_HUB_OFFLINE is set")
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError(
            f"loading {name!r} from the hub needs the datasets package (pip install datasets)"
        ) from exc
    try:
        data = datasets.load_dataset(name, split=split)
    except Exception as exc:  # network, auth, unknown name or split: all end the same way
        raise _hub_failure(name, short(exc)) from exc
    return [dict(row) for row in data]


def _load_hub_check(name: str) -> None:
    if name.lower().endswith(_FILE_SUFFIXES) or not _HUB_NAME.fullmatch(name):
        raise InputError(f"{name}: no such file or folder (nor an owner/name hub dataset)")


def _load_hub(
    name: str, fmt: str | None, split: str, inputs: Collection[str]
) -> list[LabelledPair]:
    _load_hub_check(name)
    source = f"{name} [{split}]"
    records = _read_hub(name, split)
    fmt = fmt or detect_format(records, source)
    rows = [Record(i, row) for i, row in enumerate(records)]
    return _convert(rows, fmt, source, name.rsplit("/", 1)[-1], inputs)


def _from_columns(
    records: list[Record], columns: ColumnMap, source: str, subset: str, inputs: Collection[str]
) -> list[LabelledPair]:
    pairs = []
    for r in records:
        place = f"{source}: {r.place()}"
        rid, sub, a, b, label = mapped_pair(r.value, r.index, place, columns, subset)
        chosen, rejected = (b, a) if label == "B" else (a, b)
        held = mapped_inputs(r.value, inputs, columns.inputs)
        pairs.append(LabelledPair(rid, sub, chosen, rejected, tie=label == "tie", inputs=held))
    return pairs


def _from_score_columns(
    records: list[Record], columns: ScoreColumns, source: str, subset: str, inputs: Collection[str]
) -> list[ScoredReply]:
    replies = []
    for r in records:
        place = f"{source}: {r.place()}"
        rid, sub, conversation, score = mapped_reply(r.value, r.index, place, columns, subset)
        held = mapped_inputs(r.value, inputs, columns.inputs)
        replies.append(ScoredReply(rid, sub, conversation, score, held))
    return replies


def _mapped_records(source: str, split: str) -> tuple[list[Record], str, str]:
    """The records of a file or hub dataset read through a column mapping, with the
    name errors give the source and the default subset."""
    path = Path(source)
    if path.is_dir():
        raise InputError(f"{path}: --columns reads a file or a hub dataset, not a folder")
    if path.exists():
        return _read_records(path), str(path), path.stem
    _load_hub_check(source)
    rows = [Record(i, row) for i, row in enumerate(_read_hub(source, split))]
    return rows, f"{source} [{split}]", source.rsplit("/", 1)[-1]


def load_pairs(
    source: str,
    fmt: str | None = None,
    split: str = "filtered",
    columns: str | dict[str, str] | ColumnMap | None = None,
    inputs: Collection[str] = (),
) -> list[LabelledPair]:
    """Load and check every labelled pair of a file, an LLMBar folder or a hub dataset;
    with ``columns`` (``"prompt=…,a=…,b=…,label=…"`` or a dict), any field names. Each
    pair keeps the ``inputs`` (a judge's, by name) its record holds."""
    _check_format(fmt)
    if columns is not None:
        if fmt is not None:
            raise InputError("give --columns or --format, not both")
        cmap = parse_columns(columns, inputs)
        if not isinstance(cmap, ColumnMap):
            raise InputError("--columns with score=… reads replies with human scores, not pairs")
        records, where, subset = _mapped_records(str(source), split)
        pairs = _from_columns(records, cmap, where, subset, inputs)
        _check_unique(pairs, str(source))
        return pairs
    path = Path(source)
    if path.is_dir():
        if fmt not in (None, "llmbar"):
            raise InputError(f"{path}: a folder is read as llmbar, not as {fmt}")
        pairs = _load_llmbar_folder(path, inputs)
    elif path.exists():  # a FIFO or a device too: the reader refuses it by name
        pairs = _load_file(path, fmt, inputs)
    else:
        pairs = _load_hub(str(source), fmt, split, inputs)
    _check_unique(pairs, str(source))
    return pairs


def load_scored(
    source: str,
    columns: str | dict[str, str] | ScoreColumns,
    split: str = "filtered",
    inputs: Collection[str] = (),
) -> list[ScoredReply]:
    """Every reply with a human score of a file or hub dataset, through ``columns``
    (``"prompt=…,reply=…,score=…"``), with the ``inputs`` its record holds."""
    cmap = parse_columns(columns, inputs)
    if not isinstance(cmap, ScoreColumns):
        raise InputError("--columns: replies with human scores need score=FIELD and reply=FIELD")
    records, where, subset = _mapped_records(str(source), split)
    replies = _from_score_columns(records, cmap, where, subset, inputs)
    _check_unique(replies, str(source))
    return replies
