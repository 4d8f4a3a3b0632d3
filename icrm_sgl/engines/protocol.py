"""The surface every engine offers to ``ICRM``, declared once.

Program engines (``local``, ``sglang``) are also sglang ``BaseBackend``s that run the
judging programs; hosted engines add ``judge``, one validated verdict per request. Which
kind an engine is, and what it can do, is declared per engine name in
:mod:`icrm_sgl.engines.capabilities`.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel


class Engine(Protocol):
    """What ICRM needs from any engine."""

    #: The engine's resolved settings (every default filled in): part of the cache key.
    options: BaseModel
    #: Examples in flight at once in a batch, unless the caller says otherwise.
    batch_threads: int

    def get_model_name(self) -> str:
        """The model the engine runs (a name or a path)."""
        ...

    def shutdown(self) -> None:
        """Release the model, connections or a launched server."""
        ...


class HostedJudge(Engine, Protocol):
    """An engine that returns whole verdicts, validated and re-asked (hosted APIs)."""

    def judge(
        self, prompt: str, rm_type: str, completion: bool, gen: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A validated public verdict and its meta; ``VerdictError`` / ``EngineError``."""
        ...
