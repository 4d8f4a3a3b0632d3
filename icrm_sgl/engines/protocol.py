"""The surface every engine offers to ``ICRM``, declared once, on the engine itself.

Program engines (``local``, ``sglang``) are also sglang ``BaseBackend``s that run the
judging programs; hosted engines add ``judge``, one validated verdict per request. An
engine says what it is and can do through the attributes below (its ``capabilities``,
its options' ``run_only`` names, ``chat_template_known``, ``program_layout``), so a
third-party engine registered with ``register_engine`` is checked exactly like the
built-ins, and no caller keeps a table of engine names.
"""

from __future__ import annotations

import os
import types
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel, ConfigDict, SecretStr, model_validator

from icrm_sgl.engines.capabilities import Capabilities
from icrm_sgl.errors import InputError

if TYPE_CHECKING:
    from icrm_sgl.judges.judge import Judge


class EngineOptions(BaseModel):
    """Base of every engine's settings: unknown options are refused, types are strict as
    in ``ICRM``'s own settings (``n_seq="4"`` is refused, not read as 4), and ``run_only``
    names the settings that change how a run goes (speed, logging, retries), never a
    verdict, so they stay out of cache keys and resume checks.

    Strict, but not to the letter: a value of the right kind in the form Python or
    ``-E KEY=VALUE`` gives it is taken (``_plain_values``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run_only: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, data: Any) -> Any:
        """Values of the right kind in the forms users give them: a path where text goes
        (``log_path=Path(...)``), a tuple where a list goes, and what the command line
        reads ``-E KEY=VALUE`` as (a number where it can, ``true`` / ``false`` as a
        switch): ``0`` / ``1`` for a switch, digits for text (``-E api_key=12345``).
        Text is never read as a number, nor a number as a switch beyond 0 and 1."""
        if not isinstance(data, dict):
            return data
        kinds = _option_kinds(cls)
        return {key: _plain(kinds.get(key, frozenset()), value) for key, value in data.items()}

    def verdict_settings(self) -> dict[str, Any]:
        """The resolved settings that can change a verdict, sorted by name."""
        dumped = self.model_dump(mode="json")
        return {k: v for k, v in sorted(dumped.items()) if k not in self.run_only}


@cache
def _option_kinds(options: type[EngineOptions]) -> dict[str, frozenset[str]]:
    """Each option's kinds of value by every name it is given under (``text``,
    ``switch``, ``number``, ``list``)."""
    kinds: dict[str, frozenset[str]] = {}
    for name, info in options.model_fields.items():
        alias = info.validation_alias
        names = [name, *(alias.choices if isinstance(alias, AliasChoices) else [alias])]
        for key in names:
            if isinstance(key, str):
                kinds[key] = _kinds(info.annotation)
    return kinds


def _kinds(annotation: Any) -> frozenset[str]:
    """The kinds of value a field's type takes, through ``X | None`` and unions."""
    union = get_origin(annotation) in (Union, types.UnionType)
    found = set()
    for arg in get_args(annotation) if union else (annotation,):
        if arg in (str, SecretStr):
            found.add("text")
        elif arg is bool:
            found.add("switch")
        elif arg in (int, float):
            found.add("number")
        elif (get_origin(arg) or arg) is list:
            found.add("list")
    return frozenset(found)


def _plain(kinds: frozenset[str], value: Any) -> Any:
    """``value`` in the form an option of these kinds takes, where it is one of them."""
    if "text" in kinds and isinstance(value, os.PathLike):
        return os.fspath(value)
    if "list" in kinds and isinstance(value, list | tuple):
        return [os.fspath(item) if isinstance(item, os.PathLike) else item for item in value]
    if type(value) is int and "number" not in kinds:
        if "switch" in kinds and value in (0, 1):
            return bool(value)
        if "text" in kinds:
            return str(value)
    return value


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
        self, prompt: str, judge: Judge, completion: bool, gen: dict[str, Any]
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
