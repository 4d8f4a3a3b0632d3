"""Append-only JSONL results with a config fingerprint, so runs survive being killed.

Every record is written and flushed as soon as its pair is judged. ``--resume`` reads
the finished ids back (dropping a line cut short by a crash) and refuses to continue a
run whose configuration differs. A run holds the folder's lock from ``lock()`` (or
``open()``) to ``close()``, so a second run on the same folder is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.lock import FolderLock
from icrm_sgl.plumbing.files import open_input, read_text
from icrm_sgl.plumbing.records import loads, read_records

RESULTS = "results.jsonl"
CONFIG = "config.json"


class ResultStore:
    """``results.jsonl`` + ``config.json`` in one output folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.results_path = self.folder / RESULTS
        self.config_path = self.folder / CONFIG
        self._file: Any = None
        self._lock = FolderLock(self.folder)

    def lock(self) -> None:
        """Claim the folder now (before a model loads): an ``InputError`` when it cannot be
        written or another run holds it."""
        self._lock.acquire()

    def open(self, config: dict[str, Any], *, resume: bool, overwrite: bool) -> set[str]:
        """Prepare the folder; return the ids already judged (empty unless resuming)."""
        self.lock()
        exists = self._holds_results()
        if exists and not (resume or overwrite):
            raise InputError(
                f"{self.results_path} already holds results: pass --resume to continue "
                "that run or --overwrite to start again"
            )
        if resume and exists:
            self._check_config(config)
            done = {r["id"] for r in self._repair_and_read()}
        else:
            self.results_path.write_text("", encoding="utf-8")
            done = set()
        self.config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        self._file = self.results_path.open("a", encoding="utf-8")
        return done

    def _check_config(self, config: dict[str, Any]) -> None:
        try:
            old = loads(read_text(self.config_path), str(self.config_path))
        except InputError as exc:
            raise InputError(f"cannot resume: {self.config_path} is missing or unreadable") from exc
        changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        if changed:
            raise InputError(
                "refusing to mix results from a different configuration "
                f"(changed: {', '.join(changed)}); use another --output-dir or --overwrite"
            )

    def _holds_results(self) -> bool:
        """Whether results.jsonl is there and not empty; an ``InputError`` when something
        else (a FIFO, a folder) is there, which writing or reading would block on or fail."""
        if not self.results_path.exists():
            return False
        with open_input(self.results_path, partial=True) as source:  # any size: only
            return source.size > 0  # --resume reads it, --overwrite empties it

    def _repair_and_read(self) -> list[dict[str, Any]]:
        """Records on disk; a last line without its newline (a crash mid-write) is cut."""
        with open_input(self.results_path) as source:  # a regular file within the limit
            data = source.read()
        end, size = data.rfind(b"\n") + 1, len(data)
        del data  # read_records reads the file again
        if end < size:
            with self.results_path.open("r+b") as f:
                f.truncate(end)
        try:
            records = read_records(self.results_path).values
        except InputError as exc:
            raise InputError(f"{exc}; remove that line or start again with --overwrite") from None
        for index, record in enumerate(records):
            if not isinstance(record, dict) or "id" not in record:
                raise InputError(
                    f"{self.results_path}: record {index} is not a result record; remove it "
                    "or start again with --overwrite"
                )
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and push it to disk before returning."""
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def records(self) -> list[dict[str, Any]]:
        return self._repair_and_read()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._lock.release()
