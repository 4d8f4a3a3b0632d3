"""One run per output folder: an advisory lock that the OS releases when its holder dies.

``filelock`` (an OS lock on ``<folder>/.lock``) rather than a marker file: a run killed
with SIGKILL leaves no stale lock behind, so ``--resume`` works right after a crash. The
holder writes its pid into the file so a refused run can name it.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

from icrm_sgl.errors import InputError
from icrm_sgl.plumbing.files import writable_folder

LOCK_FILE = ".lock"


class FolderLock:
    """Exclusive, non-blocking ownership of a folder by this process."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._lock: FileLock | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``InputError`` naming the process that holds it."""
        if self._lock is not None:
            return
        writable_folder(self.folder, "output folder")
        path = self.folder / LOCK_FILE
        lock = FileLock(path, timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout as exc:
            holder = _read(path) or "unknown"
            raise InputError(
                f"output folder {self.folder} is in use by another eval run (pid {holder}); "
                "wait for it to finish or pick another --output-dir"
            ) from exc
        except OSError as exc:
            raise InputError(f"output folder {self.folder}: cannot write ({exc.strerror})") from exc
        path.write_text(str(os.getpid()), encoding="utf-8")
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""
