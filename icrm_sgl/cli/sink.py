"""Where a command writes its records: a file opened before any work, or standard output.

A write that fails later (a full disk, an I/O error) becomes one ``OutputError`` line; a
reader that hung up (``| head``) is the CLI's stdout guard's ``OutputClosed``.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from icrm_sgl.errors import OutputError
from icrm_sgl.plumbing.files import open_for_writing


class RecordSink:
    """Text and JSONL records, flushed as they are written."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._file: IO[str] = open_for_writing(path) if path else sys.stdout
        self._failed = False

    def write(self, text: str) -> None:
        """Write and flush ``text``; a failure as a typed error."""
        try:
            self._file.write(text)
            self._file.flush()
        except OSError as exc:
            self._failed = True
            raise self._error(exc) from exc

    def record(self, record: dict[str, Any]) -> None:
        self.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Close the file (never standard output); after a failed write, quietly."""
        if self.path is None:
            return
        try:
            self._file.close()
        except OSError as exc:
            if not self._failed:
                raise self._error(exc) from exc

    def _error(self, exc: OSError) -> OutputError:
        where = f"output {self.path}" if self.path else "standard output"
        return OutputError(f"{where}: cannot write ({exc.strerror or exc})")

    def __enter__(self) -> RecordSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
