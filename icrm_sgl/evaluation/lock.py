"""One run per output folder: an advisory lock that the OS releases when its holder dies.

``flock`` on ``<folder>/.lock`` rather than a marker file: a run killed with SIGKILL
leaves no stale lock behind, so ``--resume`` works right after a crash.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from icrm_sgl.errors import InputError
from icrm_sgl.files import writable_folder

LOCK_FILE = ".lock"


class FolderLock:
    """Exclusive, non-blocking ownership of a folder by this process."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``InputError`` naming the process that holds it."""
        if self._handle is not None:
            return
        writable_folder(self.folder, "output folder")
        path = self.folder / LOCK_FILE
        try:
            handle = path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"output folder {self.folder}: cannot write ({exc.strerror})") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise InputError(
                f"output folder {self.folder} is in use by another eval run (pid {holder}); "
                "wait for it to finish or pick another --output-dir"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the descriptor drops the flock
            self._handle = None
