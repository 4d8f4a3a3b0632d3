"""Reading and writing the user's files, with every failure as one ``InputError`` line.

Used for inputs, shot pools, templates, result folders and output files alike, so that a
missing, unreadable, non-UTF-8 or unwritable path reads the same everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from icrm_sgl.errors import InputError


def read_text(path: str | Path, label: str = "") -> str:
    """The file's text (UTF-8, a leading byte-order mark dropped)."""
    name = f"{label} {path}".strip()
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (bad byte at offset {exc.start})") from exc


def open_for_writing(path: str | Path, label: str = "output") -> IO[str]:
    """Open (and truncate) a text file now, so an unwritable path fails before any work."""
    try:
        return Path(path).open("w", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{label} {path}: cannot write ({exc.strerror or exc})") from exc


def writable_folder(path: str | Path, label: str) -> Path:
    """Create the folder if needed and check that files can be created in it."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{label} {folder}: cannot create ({exc.strerror or exc})") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{label} {folder}: not writable")
    return folder
