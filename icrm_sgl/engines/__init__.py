"""Engine registry, the one place engines are named: names map to factories that are
imported only when used.

A factory takes ``model_name`` and engine options and returns an :class:`Engine`: an
sglang ``BaseBackend`` that runs icrm-sgl's programs, or a hosted engine that returns
whole verdicts. The engine declares what it can do on itself (``protocol.Engine``), and
every engine built here is checked for those declarations, so a third-party engine
registered with ``register_engine`` is accepted or refused like the built-ins.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from icrm_sgl.engines.protocol import Engine, check_engine
from icrm_sgl.errors import InputError, MissingDependencyError

EngineFactory = Callable[..., Engine]

#: name → the factory, or its "module:function" (imported lazily).
_ENGINES: dict[str, str | EngineFactory] = {
    "local": "icrm_sgl.engines.local.engine:create",
    "sglang": "icrm_sgl.engines.sglang.launch:create",
    "openai": "icrm_sgl.engines.hosted.openai_compat:create",
    "together": "icrm_sgl.engines.hosted.openai_compat:create_together",
    "vllm": "icrm_sgl.engines.hosted.vllm:create",
    "mistral": "icrm_sgl.engines.hosted.openai_compat:create_mistral",
    "claude": "icrm_sgl.engines.hosted.claude:create",
}


def register_engine(name: str, factory: str | EngineFactory) -> None:
    """Register (or replace) an engine: its factory, or ``"module:function"`` naming it.
    The engine it builds declares its own capabilities (see ``protocol.Engine``)."""
    _ENGINES[name] = factory


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def create_engine(name: str, model_name: str | None = None, **options: Any) -> Engine:
    """Build the engine registered under ``name``."""
    target = _ENGINES.get(name)
    if target is None:
        raise InputError(f"unknown engine {name!r}: choose one of {', '.join(engine_names())}")
    factory = _factory(name, target) if isinstance(target, str) else target
    try:
        engine = factory(model_name=model_name, **options)
    except ValidationError as exc:
        raise InputError(f"engine {name!r}: {option_problems(exc)}") from exc
    try:
        check_engine(name, engine)
    except InputError:
        engine.shutdown()
        raise
    return engine


def _factory(name: str, target: str) -> EngineFactory:
    """The factory named ``"module:function"``, imported now."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"engine {name!r} needs the package {exc.name!r}: pip install {exc.name}"
        ) from exc
    factory: EngineFactory = getattr(module, attr)
    return factory


def option_problems(exc: ValidationError) -> str:
    """A validation error of an engine's options in one line; an option the engine does
    not have is named as such."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        reason = err["ctx"]["error"] if err["type"] == "value_error" else err["msg"]
        if err["type"] == "extra_forbidden":
            problems.append(f"no option {where!r} (it has no meaning for this engine)")
        elif not where:  # a check across options: its own words suffice
            problems.append(str(reason))
        else:
            problems.append(f"bad option {where}: {reason}")
    return "; ".join(problems)
