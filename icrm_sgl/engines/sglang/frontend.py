"""Every use of sglang's frontend internals, in one place (tested against the pinned
version in ``tests/engines/sglang/test_sglang_frontend.py``).

A ``BaseBackend`` receives the program's ``StreamExecutor``, whose public surface does
not include the text so far (``text_``) or the run's id (``sid``); and the executor
reports a failed program by a ``UserWarning`` whose only mark is its text. If a new
sglang changes any of them, this module and its test are what change.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from sglang.lang.interpreter import StreamExecutor

#: The sglang versions these internals were checked against (``pyproject.toml`` pins it).
SUPPORTED = "sglang==0.5.23"

#: How sglang's executor starts the warning it emits for a failed program.
_PROGRAM_ERROR_WARNING = "Error in stream_executor"


def program_text(s: StreamExecutor) -> str:
    """The prompt text the program has built so far."""
    return s.text_


def program_run_id(s: StreamExecutor) -> str:
    """An id unique to this program run (the same for all its requests)."""
    return s.sid


#: Set once the process is stopping (Ctrl-C, SIGTERM): program errors stay quiet for good.
_stopping = False


def _ignore_program_errors() -> None:
    warnings.filterwarnings("ignore", message=_PROGRAM_ERROR_WARNING, category=UserWarning)


@contextmanager
def program_errors_quiet() -> Iterator[None]:
    """Silence the executor's warning for a failed program (it prints a full traceback);
    the failure is still in the state, and reported once with the example."""
    try:
        with warnings.catch_warnings():
            _ignore_program_errors()
            yield
    finally:
        if _stopping:  # leaving ``catch_warnings`` dropped the process-wide filter
            _ignore_program_errors()


def quiet_program_errors_from_now_on() -> None:
    """The process is stopping: program threads still running fail once the model is
    closed, and sglang would warn about each with a traceback; their examples are not
    reported anyway, so those warnings are noise from here on."""
    global _stopping
    _stopping = True
    _ignore_program_errors()
