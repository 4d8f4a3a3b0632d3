"""Shot pools: loading, validation against the verdict schema, and sampling."""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from icrm_sgl.errors import InputError
from icrm_sgl.programs.prompts import example_fields
from icrm_sgl.schemas import validate_verdict

SAMPLING_MODES = ("fixed", "random")

Shot = dict[str, Any]


def builtin_pool_path(rm_type: str) -> Path:
    """Path of the packaged pool for a judging mode."""
    return Path(str(resources.files("icrm_sgl.shots_pool").joinpath(f"{rm_type}.json")))


def _normalise(record: Any, rm_type: str, index: int, source: str) -> Shot:
    where = f"{source}: shot {index}"
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected an object, got {type(record).__name__}")
    shot = dict(record)
    shot.setdefault("id", f"{rm_type}-{index}")
    shot.setdefault("category", "general")
    where = f"{source}: shot {shot['id']}"
    feedback = shot.get("feedback")
    if isinstance(feedback, str):
        try:
            feedback = json.loads(feedback)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: feedback is not valid JSON ({exc.msg})") from None
    try:
        shot["feedback"] = validate_verdict(rm_type, feedback or {}).to_public()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "feedback"
        raise InputError(f"{where}: feedback {loc}: {first['msg']}") from None
    example_fields(rm_type, shot, where)
    return shot


def load_shots(rm_type: str, path: str | Path | None = None) -> list[Shot]:
    """Load and validate a pool (the packaged one when ``path`` is None)."""
    source = Path(path) if path is not None else builtin_pool_path(rm_type)
    try:
        records = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"shots pool {source}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"shots pool {source}: invalid JSON at line {exc.lineno}") from None
    if not isinstance(records, list):
        raise InputError(f"shots pool {source}: expected a JSON list of shots")
    shots = [_normalise(r, rm_type, i, str(source)) for i, r in enumerate(records)]
    ids = [s["id"] for s in shots]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(f"shots pool {source}: duplicate ids {dupes}")
    return shots


def sample_shots(
    pool: list[Shot], n: int, mode: str = "fixed", seed: int | None = 42
) -> list[Shot]:
    """Pick ``n`` shots: ``fixed`` takes the first n (one shared prefix), ``random`` is seeded."""
    if not 0 <= n <= len(pool):
        raise InputError(f"num_shots must be between 0 and {len(pool)} (pool size), got {n}")
    if mode == "fixed":
        return pool[:n]
    if mode == "random":
        return random.Random(seed).sample(pool, n)
    raise InputError(f"unknown shot sampling mode {mode!r}: expected one of {SAMPLING_MODES}")
