"""Engine registry: names map to factories that are imported only when used.

A factory takes ``model_name`` and engine options and returns an :class:`Engine`: an
sglang ``BaseBackend`` that runs icrm-sgl's programs, or a hosted engine that returns
whole verdicts. What each engine can do is declared in ``capabilities``. Later engines
register here without touching callers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from icrm_sgl.engines.protocol import Engine
from icrm_sgl.errors import InputError, MissingDependencyError

EngineFactory = Callable[..., Engine]

#: name → "module:function" of the factory, imported lazily.
_ENGINES: dict[str, str] = {
    "local": "icrm_sgl.engines.local:create",
    "sglang": "icrm_sgl.engines.sglang_server:create",
    "openai": "icrm_sgl.engines.hosted.openai_compat:create",
    "together": "icrm_sgl.engines.hosted.openai_compat:create_together",
    "vllm": "icrm_sgl.engines.vllm_server:create",
    "mistral": "icrm_sgl.engines.hosted.openai_compat:create_mistral",
    "claude": "icrm_sgl.engines.hosted.claude:create",
}


def register_engine(name: str, target: str) -> None:
    """Register (or replace) an engine factory given as ``"module:function"``."""
    _ENGINES[name] = target


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def create_engine(name: str, model_name: str | None = None, **options: Any) -> Engine:
    """Build the engine registered under ``name``."""
    target = _ENGINES.get(name)
    if target is None:
        raise InputError(f"unknown engine {name!r}: choose one of {', '.join(engine_names())}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"engine {name!r} needs the package {exc.name!r}: pip install {exc.name}"
        ) from exc
    factory: EngineFactory = getattr(module, attr)
    try:
        return factory(model_name=model_name, **options)
    except ValidationError as exc:
        raise InputError(f"engine {name!r}: {option_problems(exc)}") from exc


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
