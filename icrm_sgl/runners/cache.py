"""The one verdict cache (opt-in, ``--use-cache``) in front of every runner.

``score``, ``eval``, ``rank`` and ``serve`` all judge through ``ICRM.judge_batch``, which
looks verdicts up here under one key: the caller's opaque judging identity (engine,
model, program, prompt, shots, sampling, seed) and the example's fields exactly as shown
to the judge (so the two orders of a pair are two entries). An entry keeps the verdict
with the meta it was produced with; a hit returns both, marked ``from_cache``.

A cached verdict is trusted no more than a fresh one: every hit is validated by the
caller's verdict check, and an entry that fails (not JSON, no meta, wrong keys, a choice
out of range) is a miss, counted in ``rejected``, and replaced once the example is
judged again. A file that SQLite cannot read is one ``InputError`` naming it; it is never
moved or rebuilt behind the user's back.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from icrm_sgl.errors import InputError
from icrm_sgl.plumbing.files import default_cache_dir, writable_folder
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.runners.base import Batch, Runner

#: Turns a stored verdict (a dict) into the public verdict; raises on an invalid one.
Validator = Callable[[Any], dict[str, Any]]

#: Entries live in this table: ``key`` → ``{"verdict": {...}, "meta": {...}}`` as JSON.
TABLE = "judgements"

_T = TypeVar("_T")


def cache_key(identity: str, fields: Mapping[str, str]) -> str:
    """Hash of the caller's judging identity and the example's fields as shown (A/B order)."""
    payload = json.dumps({"identity": identity, "fields": dict(fields)}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class VerdictCache:
    """SQLite key → verdict and meta; only valid verdicts are stored or returned.

    Safe to share between threads (``serve`` judges on a worker thread) and processes
    (SQLite locks the file itself).
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        folder = writable_folder(folder or default_cache_dir(), "cache folder")
        self.path = folder / "verdicts.sqlite"
        self.rejected = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection = self._guard(self._connect)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, entry TEXT)")
        (status,) = db.execute("PRAGMA quick_check").fetchone()
        if status != "ok":
            raise sqlite3.DatabaseError(status)
        return db

    def _guard(self, call: Callable[[], _T]) -> _T:
        """Run a database call; SQLite's failures become one line naming the file."""
        try:
            with self._lock:
                return call()
        except sqlite3.Error as exc:
            raise InputError(
                f"verdict cache {self.path} is unreadable ({exc}); delete it or pass "
                "another --cache-dir"
            ) from exc

    def get(self, key: str, validate: Validator) -> Judgement | None:
        """The cached verdict and its meta (plus ``from_cache``), the verdict checked by
        ``validate`` like a fresh one; None on a miss or a bad entry."""
        query = f"SELECT entry FROM {TABLE} WHERE key = ?"
        row = self._guard(lambda: self._db.execute(query, (key,)).fetchone())
        if row is None:
            return None
        try:
            entry = json.loads(row[0])
            if not isinstance(entry.get("meta"), dict):
                raise TypeError("entry without meta")
            verdict = validate(entry["verdict"])
        except (ValidationError, ValueError, TypeError, KeyError, AttributeError):
            self.rejected += 1
            return None
        return Judgement("", verdict=verdict, meta={**entry["meta"], "from_cache": True})

    def put(self, key: str, result: Judgement) -> None:
        """Store a valid result's verdict with its meta (``from_cache`` left out)."""
        meta = {k: v for k, v in result.meta.items() if k != "from_cache"}
        entry = json.dumps({"verdict": result.verdict, "meta": meta})

        def write() -> None:
            self._db.execute(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?)", (key, entry))
            self._db.commit()

        self._guard(write)

    def rejected_note(self) -> str | None:
        """One line for stderr when invalid entries were met (else None)."""
        if not self.rejected:
            return None
        return (
            f"verdict cache {self.path}: {self.rejected} invalid entries ignored, "
            "judged again and replaced"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def run_cached(
    runner: Runner,
    cache: VerdictCache,
    identity: str,
    validate: Validator,
    batch: Batch,
    overwrite: bool = False,
) -> Iterator[Judgement]:
    """Cached results first (unless ``overwrite``), then the misses through ``runner``;
    every new valid result is stored under ``identity`` + the example's fields."""
    keys = [cache_key(identity, fields) for fields in batch.arguments]
    todo = []
    for i, key in enumerate(keys):
        hit = None if overwrite else cache.get(key, validate)
        if hit is None:
            todo.append(i)
        else:
            hit.id = batch.ids[i]
            yield hit
    if not todo:
        return
    for result in runner.run(batch.subset(todo)):
        position = int(result.id)
        if result.ok:
            cache.put(keys[position], result)
        result.id = batch.ids[position]
        yield result
