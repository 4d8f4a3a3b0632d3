"""The surface every engine offers to ``ICRM``, declared once, on the engine itself.

Program engines (``local``, ``sglang``) are also sglang ``BaseBackend``s that run the
judging programs; hosted engines add ``judge``, one validated verdict per request. An
engine says what it is and can do through the attributes below (its ``capabilities``,
its options' ``run_only`` names, ``chat_template_known``, ``program_layout``), so a
third-party engine registered with ``register_engine`` is checked exactly like the
built-ins, and no caller keeps a table of engine names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from icrm_sgl.engines.capabilities import Capabilities
from icrm_sgl.errors import InputError

if TYPE_CHECKING:
    from icrm_sgl.judges.judge import Judge


class EngineOptions(BaseModel):
    """Base of every engine's settings: unknown options are refused, types are strict as
    in ``ICRM``'s own settings (``n_seq="4"`` is refused, not read as 4), and ``run_only``
    names the settings that change how a run goes (speed, logging, retries), never a
    verdict, so they stay out of cache keys and resume checks."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run_only: ClassVar[frozenset[str]] = frozenset()

    def verdict_settings(self) -> dict[str, Any]:
        """The resolved settings that can change a verdict, sorted by name."""
        dumped = self.model_dump(mode="json")
        return {k: v for k, v in sorted(dumped.items()) if k not in self.run_only}


class Engine(Protocol):
    """What ICRM needs from any engine."""

    #: The engine's resolved settings (every default filled in): part of the cache key.
    options: EngineOptions
    #: Examples in flight at once in a batch, unless the caller says otherwise.
    batch_threads: int

    @property
    def capabilities(self) -> Capabilities:
        """Sampling options, prompt modes and verdict enforcement the engine offers."""
        ...

    @property
    def chat_template_known(self) -> bool:
        """Chat mode can be served: the engine knows the model's chat template."""
        ...

    @property
    def program_layout(self) -> str:
        """How programs write the text fields: ``per_field`` or ``one_request``."""
        ...

    def get_model_name(self) -> str:
        """The model the engine runs (a name or a path)."""
        ...

    def shutdown(self) -> None:
        """Release the model, connections or a launched server."""
        ...


class HostedJudge(Engine, Protocol):
    """An engine that returns whole verdicts, validated and re-asked (hosted APIs)."""

    def judge(
        self, prompt: str, rm_type: Judge | str, completion: bool, gen: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A validated public verdict and its meta; ``VerdictError`` / ``EngineError``."""
        ...


#: Members every engine must declare (``Engine``), with what each must be.
_DECLARED: dict[str, type | tuple[type, ...]] = {
    "options": EngineOptions,
    "batch_threads": int,
    "capabilities": Capabilities,
    "chat_template_known": bool,
    "program_layout": str,
}


def check_engine(name: str, engine: object) -> None:
    """Refuse an engine that does not declare what ``Engine`` asks, naming what lacks."""
    problems = [
        f"{member} ({kind.__name__ if isinstance(kind, type) else kind})"
        for member, kind in _DECLARED.items()
        if not isinstance(getattr(engine, member, None), kind)
    ]
    if not callable(getattr(engine, "get_model_name", None)):
        problems.append("get_model_name()")
    if not callable(getattr(engine, "shutdown", None)):
        problems.append("shutdown()")
    hosted = not problems and not engine.capabilities.programs  # type: ignore[attr-defined]
    if hosted and not callable(getattr(engine, "judge", None)):
        problems.append("judge() (its capabilities say it runs no programs)")
    if problems:
        raise InputError(
            f"engine {name!r} does not declare {', '.join(problems)}; see "
            "icrm_sgl.engines.protocol.Engine"
        )
