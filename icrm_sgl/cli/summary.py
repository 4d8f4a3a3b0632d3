"""Wording shared by the commands' status and summary lines on stderr."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 verdict``, ``2 verdicts``: the count and the noun that agrees with it."""
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"


def status(message: str) -> None:
    """Say what a slow step is doing, on a terminal only (pipelines and logs keep their
    stderr to results and errors): loading a model can take seconds, a first verdict on a
    CPU a minute."""
    if sys.stderr.isatty():
        click.echo(message, err=True)


class VerdictProgress:
    """What a single verdict is doing, on stderr.

    On a terminal, one status line redrawn as the engine decodes (fields done, tokens);
    elsewhere one plain line saying what runs, so a log shows why nothing else appears
    for a while. Fed by the engine's progress hook where it has one (the local engine);
    ``fields`` None: an engine without one, whose line shows the message alone.
    """

    def __init__(
        self,
        message: str,
        fields: int | None,
        stream: TextIO | None = None,
        interval_s: float = 0.1,
    ) -> None:
        self.message = message
        self.fields = fields
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.tokens = self.done = 0
        self._drawn = 0.0
        self._lock = threading.Lock()
        self._live = self.stream.isatty()

    def start(self) -> None:
        """The first line: the status line on a terminal, else the one plain line."""
        if self._live:
            self._draw()
        else:
            self.stream.write(f"{self.message} …\n")
            self.stream.flush()

    def update(self, tokens: int, fields: int) -> None:
        """The engine's hook: ``tokens`` and ``fields`` newly done (any thread)."""
        with self._lock:
            self.tokens += tokens
            self.done += fields
            if self._live and time.monotonic() - self._drawn >= self.interval_s:
                self._draw()

    def finish(self) -> None:
        """Leave the status line with its final counts."""
        if self._live:
            with self._lock:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()

    def _draw(self) -> None:
        line = f"{self.message} …"
        if self.fields is not None:
            done = min(self.done, self.fields)
            line += f" {done}/{self.fields} fields, {plural(self.tokens, 'token')}"
        self.stream.write(f"\r{line}")  # counts only grow: the line never gets shorter
        self.stream.flush()
        self._drawn = time.monotonic()


@contextmanager
def verdict_progress(model: Any, message: str, verdicts: int = 1) -> Iterator[VerdictProgress]:
    """Show ``VerdictProgress`` while ``model`` (an ``ICRM``) judges ``verdicts`` verdicts."""
    hook = getattr(model.backend, "set_progress_hook", None)
    fields = verdicts * len(model.definition.fields) if hook is not None else None
    progress = VerdictProgress(message, fields)
    progress.start()
    if hook is not None:
        hook(progress.update)
    try:
        yield progress
    finally:
        if hook is not None:
            hook(None)
        progress.finish()
