"""The error tree: every failure icrm-sgl raises on purpose is an ``IcrmError``.

The CLI turns these into one line on stderr and the class's ``exit_code`` (2, or 1 for a
verdict that could not be produced); set ``ICRM_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations


class IcrmError(Exception):
    """Root of all icrm-sgl errors."""

    #: The CLI's exit status for this error.
    exit_code = 2


class InputError(IcrmError, ValueError):
    """An example, a file or an option is malformed; raised before any model call."""


class OutputError(IcrmError, OSError):
    """An output file failed while being written (a full disk, an I/O error)."""


class OutputClosed(IcrmError):
    """The reader of standard output went away (``score … | head``): the CLI exits quietly."""

    #: 128 + SIGPIPE, as a shell reports a process ended by a closed pipe.
    exit_code = 141


class MissingDependencyError(IcrmError, ImportError):
    """An optional package that the chosen engine needs is not installed."""


class EngineError(IcrmError, RuntimeError):
    """The engine failed to run a program (load failure, server error, bad grammar).

    ``retryable`` marks transient failures (rate limits, 5xx, timeouts, lost connections)
    that are worth trying again after a pause; ``retry_after`` is the pause the server
    asked for (its ``Retry-After``), in seconds.
    """

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class VerdictError(IcrmError):
    """No schema-valid verdict could be obtained for an example."""

    exit_code = 1

    def __init__(self, message: str, *, raw: str | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.raw = raw
        self.attempts = attempts
