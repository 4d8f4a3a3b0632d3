"""Wording shared by the commands' status and summary lines on stderr."""

from __future__ import annotations

import sys

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
