"""A verdict cache keyed by everything that changes an answer (opt-in, ``--use-cache``)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    """``$ICRM_CACHE_DIR``, else ``~/.cache/icrm-sgl``."""
    return Path(os.environ.get("ICRM_CACHE_DIR", Path.home() / ".cache" / "icrm-sgl"))


def cache_key(fingerprint: dict[str, Any], example: dict[str, Any]) -> str:
    """Hash of the judging configuration and the example exactly as shown (its A/B order)."""
    payload = json.dumps({"config": fingerprint, "example": example}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class VerdictCache:
    """SQLite key → verdict JSON; only valid verdicts are stored."""

    def __init__(self, folder: str | Path | None = None) -> None:
        folder = Path(folder) if folder is not None else default_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "verdicts.sqlite"
        self._db = sqlite3.connect(self.path)
        self._db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict TEXT)")

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT verdict FROM verdicts WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, verdict: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO verdicts VALUES (?, ?)", (key, json.dumps(verdict))
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()
