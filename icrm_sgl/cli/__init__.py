"""The ``icrm-sgl`` command line: a click group whose commands live in their own modules."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import click

from icrm_sgl.cli.eval import eval_command
from icrm_sgl.cli.rank import rank_command
from icrm_sgl.cli.report import report_command
from icrm_sgl.cli.score import score
from icrm_sgl.cli.serve import serve
from icrm_sgl.cli.shots import shots
from icrm_sgl.errors import IcrmError, OutputClosed


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="icrm-sgl")
def cli() -> None:
    """icrm-sgl: judge chatbot responses with an in-context reward model."""


cli.add_command(score)
cli.add_command(shots)
cli.add_command(eval_command)
cli.add_command(serve)
cli.add_command(rank_command)
cli.add_command(report_command)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds exactly like Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    _stop_program_threads()
    raise Terminated


def _on_sigint(signum: int, frame: object) -> None:
    _stop_program_threads()
    raise KeyboardInterrupt


def _stop_program_threads() -> None:
    """The process is stopping: sglang program threads still running on the local engine
    stop at their next token (their verdicts would not be written), and their failures stay
    quiet (each module is imported only if a program ran)."""
    runner = sys.modules.get("icrm_sgl.engines.local.llama_runner")
    if runner is not None:
        runner.interrupt_all()
    frontend = sys.modules.get("icrm_sgl.engines.sglang.frontend")
    if frontend is not None:
        frontend.quiet_program_errors_from_now_on()


def _interrupted(exc: BaseException) -> None:
    """Ctrl-C exits 130, SIGTERM 143 (128 + the signal number), after the commands'
    own cleanup has flushed their output and printed their summary."""
    terminated = isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated)
    click.echo("interrupted (SIGTERM)" if terminated else "interrupted", err=True)
    _exit_now(128 + (signal.SIGTERM if terminated else signal.SIGINT))


def _exit_now(code: int) -> None:
    """Exit without the interpreter's teardown: it frees every object sglang's import made,
    0.5 s on an idle machine and 2-8 s on a busy one, after the user asked to stop. The
    exit handlers (servers this process launched, the llama.cpp model) still run first."""
    with contextlib.suppress(OSError):  # a reader that went away
        sys.stdout.flush()
        sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _silence_stdout() -> None:
    """Point standard output at the null device, so the interpreter's final flush into
    the closed pipe prints nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class _PipeGuard:
    """Standard output whose closed pipe is an ``OutputClosed``, whichever command wrote
    (click would otherwise end the run itself, with exit 1)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise OutputClosed("standard output closed") from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise OutputClosed("standard output closed") from None

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


@contextmanager
def _guarded_stdout() -> Iterator[None]:
    """Route the commands' standard output through ``_PipeGuard`` while they run."""
    stream = sys.stdout
    sys.stdout = _PipeGuard(stream)
    try:
        yield
    finally:
        sys.stdout = stream


def main(group: click.Group = cli) -> None:
    """Entry point: library errors become one line on stderr and their exit code (2 for
    bad input, 1 for a verdict that could not be produced); a closed stdout pipe exits
    141 without a word, whichever command was writing."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        with _guarded_stdout():
            group.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        _interrupted(exc)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except OutputClosed as exc:
        _silence_stdout()
        sys.exit(exc.exit_code)
    except IcrmError as exc:
        if os.environ.get("ICRM_DEBUG"):
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
