"""Shot pools: loading, validation against the verdict schema, and selection."""

from __future__ import annotations

import random
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from icrm_sgl.errors import InputError
from icrm_sgl.judges.verdicts import choice_winner
from icrm_sgl.plumbing.defaults import SEED
from icrm_sgl.plumbing.files import DEFINITION_LIMIT
from icrm_sgl.plumbing.records import loads, read_records

if TYPE_CHECKING:
    from icrm_sgl.judges.judge import Judge

SAMPLING_MODES = ("fixed", "random", "balanced")

Shot = dict[str, Any]


def builtin_pool_path(name: str) -> Path:
    """Path of the packaged pool of a built-in judge."""
    return Path(str(resources.files("icrm_sgl.shots_pool").joinpath(f"{name}.json")))


def shot_label(shot: Shot, key: str | None = None) -> str:
    """The shot's verdict in one word: the field ``key`` (a rubric's reward), else its
    score or its choice ("-" when it has none of them)."""
    feedback = shot["feedback"]
    for name in (key, "score", "choice"):
        if name is not None and name in feedback:
            return str(feedback[name])
    return "-"


def normalise_shot(record: Any, judge: Judge, index: int, source: str) -> Shot:
    """Check one pool record and return it with defaults and its feedback as a dict.

    The original IC-RM format loads too: ``feedback`` may be a JSON string, and a
    missing ``id`` / ``category`` gets a default.
    """
    if not isinstance(record, dict):
        raise InputError(f"{source}: shot {index}: expected an object")
    shot = dict(record)
    shot.setdefault("id", f"{judge.name}-{index}")
    shot.setdefault("category", "general")
    where = f"{source}: shot {shot['id']}"
    feedback = shot.get("feedback")
    if isinstance(feedback, str):
        feedback = loads(feedback, f"{where}: feedback")
    try:
        shot["feedback"] = judge.public(judge.validate(feedback or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "feedback"
        raise InputError(f"{where}: feedback {loc}: {first['msg']}") from exc
    judge.example_fields(shot, where)
    return shot


def read_pool(path: str | Path) -> list[Any]:
    """The raw records of a pool file (a JSON list, or JSON Lines)."""
    read = read_records(path, "shots pool", size=DEFINITION_LIMIT)
    if read.single:
        raise InputError(f"shots pool {path}: expected a JSON list of shots")
    return read.values


def pool_problems(records: list[Any], judge: Judge, source: str) -> tuple[list[Shot], list[str]]:
    """Every valid shot, and one message per invalid record or duplicate id."""
    shots, problems = [], []
    for i, record in enumerate(records):
        try:
            shots.append(normalise_shot(record, judge, i, source))
        except InputError as exc:
            problems.append(str(exc))
    counts = Counter(s["id"] for s in shots)
    problems += [f"{source}: duplicate shot id {i!r}" for i, n in counts.items() if n > 1]
    return shots, problems


def load_shots(judge: Judge, path: str | Path | None = None) -> list[Shot]:
    """Load and validate a pool for ``judge`` (its packaged one when ``path`` is None)."""
    source = Path(path) if path is not None else builtin_pool_path(judge.name)
    shots, problems = pool_problems(read_pool(source), judge, str(source))
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)
    return shots


def sample_shots(
    pool: list[Shot], n: int, mode: str = "fixed", seed: int | None = SEED
) -> list[Shot]:
    """Pick ``n`` shots.

    ``fixed`` takes the first n (one shared prefix, the default); ``random`` is a seeded
    sample; ``balanced`` spreads categories and verdicts, deterministic for a seed and n.
    """
    if not 0 <= n <= len(pool):
        raise InputError(f"num_shots must be between 0 and {len(pool)} (pool size), got {n}")
    if mode == "fixed":
        return pool[:n]
    if check_sampling_mode(mode) == "random":
        return random.Random(seed).sample(pool, n)
    return _balanced(pool, n, random.Random(seed))


def check_sampling_mode(mode: str) -> str:
    """One of ``SAMPLING_MODES``, or an ``InputError`` listing them."""
    if mode not in SAMPLING_MODES:
        raise InputError(f"unknown shot sampling mode {mode!r}: expected one of {SAMPLING_MODES}")
    return mode


def _balanced(pool: list[Shot], n: int, rng: random.Random) -> list[Shot]:
    """Round-robin over categories (seeded order); in each, the least-used verdict band
    (score band 1-2, 3-4, …, or winning side), then the least-used score or choice."""
    by_category: dict[str, list[Shot]] = {}
    for shot in pool:
        by_category.setdefault(shot["category"], []).append(shot)
    categories = sorted(by_category)
    rng.shuffle(categories)
    for shots in by_category.values():
        rng.shuffle(shots)
    # Ties start as if used once: the pool keeps A=B rare and so should a selection.
    used: Counter[str] = Counter({"tie": 1})
    picked: list[Shot] = []
    while len(picked) < n:
        for category in categories:
            if len(picked) == n:
                break
            candidates = by_category[category]
            if not candidates:
                continue
            best = min(candidates, key=lambda s: (used[_band(s)], used[shot_label(s)]))
            candidates.remove(best)
            used[_band(best)] += 1
            used[shot_label(best)] += 1
            picked.append(best)
    return picked


def _band(shot: Shot) -> str:
    """Rubric band of a score (1-2, 3-4, …) or the side a choice favours."""
    feedback = shot["feedback"]
    if isinstance(feedback.get("score"), int):
        low = (feedback["score"] - 1) // 2 * 2 + 1
        return f"{low}-{low + 1}"
    if "choice" in feedback:
        return choice_winner(feedback["choice"])
    return shot_label(shot)  # a rubric's verdict: its score or choice, if it has one
