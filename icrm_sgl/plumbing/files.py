"""Reading and writing the user's files, with every failure as one ``InputError`` line.

Used for inputs, shot pools, templates, result folders and output files alike, so that a
missing, unreadable, non-UTF-8, oversized or unwritable path reads the same everywhere.
Only regular files are read, never past a size limit: a FIFO, a device or a folder is
refused before anything waits on it, and an output never replaces a file the command reads.
"""

from __future__ import annotations

import gc
import os
import stat
import threading
import tomllib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from icrm_sgl.errors import InputError

MIB = 1 << 20
#: The most a read asks for beyond the file's size at open, per step (see ``BoundedFile``).
_STEP = MIB
#: The data-file limit in MiB without ``ICRM_MAX_INPUT_MB``.
DATA_LIMIT_MB = 512
DATA_LIMIT_ENV = "ICRM_MAX_INPUT_MB"
#: Opening a FIFO without a writer returns at once instead of waiting (POSIX only).
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


def default_cache_dir() -> Path:
    """``$ICRM_CACHE_DIR``, else ``~/.cache/icrm-sgl``."""
    return Path(os.environ.get("ICRM_CACHE_DIR", Path.home() / ".cache" / "icrm-sgl"))


@dataclass(frozen=True)
class SizeLimit:
    """The most bytes one kind of file may hold, and how its error names that kind."""

    bytes: int
    kind: str
    hint: str = ""

    def error(self, name: str, size: int | None = None) -> InputError:
        """``NAME: 2.0 GiB is over the 512 MiB limit for data files (…)``."""
        actual = "larger than" if size is None else f"{_size(size)} is over"
        hint = f" ({self.hint})" if self.hint else ""
        return InputError(f"{name}: {actual} the {_size(self.bytes)} limit for {self.kind}{hint}")


#: Templates, rubrics and shots pools: a few kilobytes in practice.
DEFINITION_LIMIT = SizeLimit(16 * MIB, "templates, rubrics and shots pools")


def data_limit() -> SizeLimit:
    """The limit for data files (examples, labelled pairs, stored results): 512 MiB, or
    ``ICRM_MAX_INPUT_MB`` MiB."""
    raw = os.environ.get(DATA_LIMIT_ENV, "").strip()
    megabytes = DATA_LIMIT_MB
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise InputError(f"{DATA_LIMIT_ENV} must be a whole number of MiB >= 1, got {raw!r}")
        megabytes = int(raw)
    return SizeLimit(megabytes * MIB, "data files", f"set {DATA_LIMIT_ENV} to raise it")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _check_file(info: os.stat_result, name: str, limit: SizeLimit | None) -> None:
    """An ``InputError`` unless ``info`` is a regular file (within ``limit``, if any)."""
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "a special file")
        raise InputError(f"{name}: is {kind}, not a regular file")
    if limit is not None and info.st_size > limit.bytes:
        raise limit.error(name, info.st_size)


class BoundedFile:
    """A checked input file that hands out no more than its size limit, should the file
    grow while it is read."""

    def __init__(self, handle: BinaryIO, name: str, limit: SizeLimit, size: int) -> None:
        self._handle = handle
        self._name = name
        self._limit = limit
        self._left = limit.bytes
        #: The file's size when it was opened: a hint only (it may grow as it is read).
        self.size = size

    def _take(self, data: bytes) -> bytes:
        self._left -= len(data)
        if self._left < 0:
            raise self._limit.error(self._name)
        return data

    def read(self) -> bytes:
        """The rest of the file, read in steps: the first its size at open (one byte more,
        to see growth), then at most 1 MiB. A buffered ``read(n)`` reserves all ``n`` bytes
        first, so asking for the whole limit at once would reserve it for any file."""
        parts = []
        step = min(self.size, self._left) + 1
        try:
            while part := self._take(self._handle.read(step)):
                parts.append(part)
                step = min(_STEP, self._left + 1)
        except MemoryError:
            raise memory_error(self._name) from None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def lines(self) -> Iterator[bytes]:
        """The rest of the file, line by line, each with its ``\\n`` (split there only)."""
        while line := self._take(self._handle.readline(self._left + 1)):
            yield line


def memory_error(name: str) -> InputError:
    """The error for a file within its limit that this process has no memory for."""
    return InputError(f"{name}: too large to read into this process's memory")


@contextmanager
def open_input(
    path: str | Path, label: str = "", limit: SizeLimit | None = None, *, partial: bool = False
) -> Iterator[BoundedFile]:
    """A regular file open for reading, within ``limit`` (default: ``data_limit()``).

    The path is checked before it is opened (a device is never opened) and the open file
    again (it may have been swapped); opening does not block, so a FIFO is refused too.
    ``partial`` is for a caller that may stop early (JSON Lines up to a record limit): a
    file over the limit is then not refused up front, only the bytes read are bounded.
    """
    name = f"{label} {path}".strip()
    limit = limit or data_limit()
    whole = None if partial else limit
    try:
        _check_file(os.stat(path), name, whole)
        fd = os.open(path, os.O_RDONLY | _NONBLOCK)
    except InputError:  # a ValueError too, unlike the one below
        raise
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except ValueError:  # what os.stat raises for a NUL byte, which no file name holds
        shown = name.replace("\0", "\\0")
        raise InputError(f"{shown}: cannot read (a path cannot hold a NUL byte)") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        _check_file(info, name, whole)
        try:
            yield BoundedFile(handle, name, limit, info.st_size)
        except OSError as exc:
            raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None


def decode(data: bytes, name: str) -> str:
    """UTF-8 text, a leading byte-order mark dropped; line ends are left as they are (a
    JSON parser reads CRLF as whitespace), so a large data file is not copied again."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (bad byte at offset {exc.start})") from None


def read_text(path: str | Path, label: str = "", limit: SizeLimit = DEFINITION_LIMIT) -> str:
    """The text of a template, rubric or other small file (see ``decode``), line ends made
    ``\\n`` as ``Path.read_text`` always made them: a template's text is part of its
    cache identity, so a CRLF template must read as it did before."""
    with open_input(path, label, limit) as source:
        data = source.read()
    return decode(data, f"{label} {path}".strip()).replace("\r\n", "\n").replace("\r", "\n")


_GC_PAUSE = threading.Lock()
#: Parsers inside ``deep_parse`` now, and whether the collector was on before the first.
_gc_pause = {"depth": 0, "was_enabled": False}


@contextmanager
def deep_parse() -> Iterator[None]:
    """Around a parser that an input nested deeply enough stops with ``RecursionError``: no
    cyclic garbage collection meanwhile. A collection that starts at that depth runs
    finalizers there, which fail for want of stack and print "Exception ignored" lines on
    stderr beside the input's one-line error."""
    with _GC_PAUSE:
        if _gc_pause["depth"] == 0:
            _gc_pause["was_enabled"] = gc.isenabled()
            gc.disable()
        _gc_pause["depth"] += 1
    try:
        yield
    finally:
        with _GC_PAUSE:
            _gc_pause["depth"] -= 1
            if _gc_pause["depth"] == 0 and _gc_pause["was_enabled"]:
                gc.enable()


def read_toml(path: str | Path, label: str) -> dict[str, Any]:
    """A small TOML file (a rubric, a panel) as its top-level table, read as ``read_text``
    reads; a parse error is one line, ``LABEL PATH: invalid TOML (…)``."""
    text = read_text(path, label)
    try:
        with deep_parse():
            return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{label} {path}: invalid TOML ({exc})") from None
    except RecursionError:
        raise InputError(f"{label} {path}: invalid TOML (nested too deeply to read)") from None


def _same_file(one: str | Path, other: str | Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except (OSError, ValueError):  # either does not exist (yet), or cannot: not one file
        return False


def refuse_overwrite(
    output: str | Path | None, reads: Iterable[str | Path | None], label: str = "output"
) -> None:
    """An ``InputError`` when ``output`` is a file the command reads (the same path, or
    the same file through a symbolic or hard link): opening it would destroy that input."""
    if output is None:
        return
    for source in reads:
        if source is not None and _same_file(output, source):
            raise InputError(
                f"{label} {output}: is the same file as {source}, which this command reads; "
                "choose another output path"
            )


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
