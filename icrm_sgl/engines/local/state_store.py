"""The prefix cache's disk tier: llama.cpp sequence states kept between processes.

A state is kept in one file with the tokens it holds, as llama.cpp's prompt cache does::

    ICRM-KV\\0 | header length (u32) | header (JSON) | tokens (int32) | state bytes

The header names what the state is valid for (``identity``: the model file, llama.cpp's
version and build, the context's layout) and a CRC-32 of tokens and state. Files live in
one folder per identity; a file is used only when its header's identity is this one, its
tokens are the prompt's prefix and its checksum holds, so a file of another model, a
truncated or corrupt one, is never loaded (a bad one is deleted and its state computed
again). Files are written to a temporary name and renamed, so two processes may write the
same state at once; the folder is kept under a size bound, least recently used first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def common_prefix_len(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two token arrays."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


@dataclass(frozen=True)
class KVState:
    """A saved sequence state: the tokens it holds and llama.cpp's serialised bytes."""

    tokens: np.ndarray
    data: bytes


MAGIC = b"ICRM-KV\0"
SUFFIX = ".kvstate"
#: A temporary file older than this is a writer's leftover (it crashed mid-write).
_STALE_TMP_S = 600.0
_TMP_SUFFIX = ".tmp"
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class _Entry:
    """A state file as indexed: where it is and the tokens it holds."""

    path: Path
    tokens: np.ndarray


class StateStore:
    """The saved states of one identity under ``root``, the folder bounded by ``max_bytes``.

    Safe to share between threads; several processes may share the folder.
    """

    def __init__(self, root: Path, identity: dict[str, Any], max_bytes: int) -> None:
        self.root = root
        self.identity = identity
        self.max_bytes = max_bytes
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        self.folder = root / digest[:24]
        self._lock = threading.Lock()
        self._index: dict[str, _Entry] = {}
        self._listed: int | None = None  # the folder's mtime when last listed
        #: States loaded from disk and written to it by this process.
        self.loaded = self.written = 0

    def best_match(self, tokens: np.ndarray) -> tuple[int, Path | None]:
        """The file whose tokens share the longest prefix with ``tokens``, and that length."""
        with self._lock:
            best, best_len = None, 0
            for entry in self._entries():
                n = common_prefix_len(entry.tokens, tokens)
                if n > best_len:
                    best, best_len = entry.path, n
            return best_len, best

    def load(self, path: Path) -> KVState | None:
        """The state in ``path`` if it is whole and this identity's; a bad file is deleted."""
        try:
            with path.open("rb") as handle:
                header, tokens = _read_header(handle)
                data = handle.read(header["n_bytes"] + 1)
        except (OSError, ValueError, KeyError, TypeError):
            self.drop(path)
            return None
        if (
            header.get("identity") != self.identity
            or len(data) != header["n_bytes"]
            or _checksum(tokens, data) != header.get("crc32")
        ):
            self.drop(path)
            return None
        _touch(path)
        self.loaded += 1
        return KVState(tokens, data)

    def put(self, state: KVState) -> None:
        """Write ``state`` (replacing the same tokens' file), then keep the folder in bound."""
        size = len(state.data) + 4 * len(state.tokens)
        if size > self.max_bytes:
            return
        header = {
            "identity": self.identity,
            "n_tokens": len(state.tokens),
            "n_bytes": len(state.data),
            "crc32": _checksum(state.tokens, state.data),
        }
        path = self.path_for(state.tokens)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, _encode(header, state))
        except OSError:
            return  # a cache that cannot be written only costs time
        self.written += 1
        self.evict(keep=path)

    def path_for(self, tokens: np.ndarray) -> Path:
        """The file that holds the state of exactly ``tokens``."""
        digest = hashlib.sha256(np.ascontiguousarray(tokens, dtype="<i4").tobytes())
        return self.folder / (digest.hexdigest()[:32] + SUFFIX)

    def drop(self, path: Path) -> None:
        """Forget a file and delete it (a bad one, or one llama.cpp refused)."""
        with self._lock:
            self._index.pop(path.name, None)
        path.unlink(missing_ok=True)

    def evict(self, keep: Path | None = None) -> None:
        """Delete the least recently used files of every identity until the folder fits."""
        files = []
        for path in self.root.glob(f"*/*{SUFFIX}"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        _remove_stale_tmp(self.root)
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size

    def _entries(self) -> list[_Entry]:
        """Every readable file's header, read once per file and relisted when the folder
        changes (a file added, replaced or deleted)."""
        try:
            listed = self.folder.stat().st_mtime_ns
        except OSError:
            self._index.clear()
            return []
        if listed != self._listed:
            names = {p.name for p in self.folder.glob(f"*{SUFFIX}")}
            self._index = {n: e for n, e in self._index.items() if n in names}
            for name in names - set(self._index):
                entry = _read_entry(self.folder / name, self.identity)
                if entry is not None:
                    self._index[name] = entry
            self._listed = listed
        return list(self._index.values())


def _encode(header: dict[str, Any], state: KVState) -> list[bytes]:
    text = json.dumps(header, sort_keys=True).encode()
    tokens = np.ascontiguousarray(state.tokens, dtype="<i4").tobytes()
    return [MAGIC, _LENGTH.pack(len(text)), text, tokens, state.data]


def _read_header(handle) -> tuple[dict[str, Any], np.ndarray]:
    """The header and tokens at the start of an open file; ValueError when malformed."""
    if handle.read(len(MAGIC)) != MAGIC:
        raise ValueError("not a state file")
    raw = handle.read(_LENGTH.size)
    if len(raw) != _LENGTH.size:
        raise ValueError("truncated header")
    (length,) = _LENGTH.unpack(raw)
    header = json.loads(handle.read(length))
    count = int(header["n_tokens"])
    raw = handle.read(4 * count)
    if len(raw) != 4 * count:
        raise ValueError("truncated tokens")
    return header, np.frombuffer(raw, dtype="<i4").astype(np.int32)


def _read_entry(path: Path, identity: dict[str, Any]) -> _Entry | None:
    """The index entry of a file of ``identity``; None for any other or unreadable file."""
    try:
        with path.open("rb") as handle:
            header, tokens = _read_header(handle)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if header.get("identity") != identity:
        return None
    return _Entry(path, tokens)


def _checksum(tokens: np.ndarray, data: bytes) -> int:
    tokens_bytes = np.ascontiguousarray(tokens, dtype="<i4").tobytes()
    return zlib.crc32(data, zlib.crc32(tokens_bytes))


def _write_atomically(path: Path, parts: list[bytes]) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            for part in parts:
                handle.write(part)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _touch(path: Path) -> None:
    """Mark a file as just used (the eviction order is by modification time)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _remove_stale_tmp(root: Path) -> None:
    cutoff = time.time() - _STALE_TMP_S
    for tmp in root.glob(f"*/.*{_TMP_SUFFIX}"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink(missing_ok=True)
        except OSError:
            continue
