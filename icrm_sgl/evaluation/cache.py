"""A verdict cache keyed by everything that changes an answer (opt-in, ``--use-cache``).

A cached verdict is trusted no more than a fresh one: every hit is validated by the
verdict model, and an entry that fails (not JSON, wrong keys, a choice out of range) is
a miss, counted in ``rejected``, and replaced once the example is judged again. A file
that SQLite cannot read is one ``InputError`` naming it; it is never moved or rebuilt
behind the user's back.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from icrm_sgl.errors import InputError
from icrm_sgl.files import writable_folder
from icrm_sgl.schemas import public_verdict


def default_cache_dir() -> Path:
    """``$ICRM_CACHE_DIR``, else ``~/.cache/icrm-sgl``."""
    return Path(os.environ.get("ICRM_CACHE_DIR", Path.home() / ".cache" / "icrm-sgl"))


def cache_key(fingerprint: dict[str, Any], example: dict[str, Any]) -> str:
    """Hash of the judging configuration and the example exactly as shown (its A/B order)."""
    payload = json.dumps({"config": fingerprint, "example": example}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class VerdictCache:
    """SQLite key → verdict JSON; only valid verdicts are stored or returned."""

    def __init__(self, folder: str | Path | None = None) -> None:
        folder = writable_folder(folder or default_cache_dir(), "cache folder")
        self.path = folder / "verdicts.sqlite"
        self.rejected = 0
        self._db = self._guard(self._connect)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path)
        db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict TEXT)")
        (status,) = db.execute("PRAGMA quick_check").fetchone()
        if status != "ok":
            raise sqlite3.DatabaseError(status)
        return db

    def _guard(self, call: Any) -> Any:
        """Run a database call; SQLite's failures become one line naming the file."""
        try:
            return call()
        except sqlite3.Error as exc:
            raise InputError(
                f"verdict cache {self.path} is unreadable ({exc}); delete it or pass "
                "another --cache-dir"
            ) from exc

    def get(self, key: str, rm_type: str) -> dict[str, Any] | None:
        """The cached verdict, validated like a fresh one; None on a miss or a bad entry."""
        query = "SELECT verdict FROM verdicts WHERE key = ?"
        row = self._guard(lambda: self._db.execute(query, (key,)).fetchone())
        if row is None:
            return None
        try:
            return public_verdict(rm_type, row[0])
        except (ValidationError, TypeError):
            self.rejected += 1
            return None

    def put(self, key: str, verdict: dict[str, Any]) -> None:
        def write() -> None:
            self._db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?)", (key, json.dumps(verdict))
            )
            self._db.commit()

        self._guard(write)

    def close(self) -> None:
        self._db.close()
