"""Engine registry: names map to factories that are imported only when used.

A factory takes ``model_name`` and engine options and returns an sglang ``BaseBackend``
that runs icrm-sgl's programs, or a ``HostedEngine`` that returns whole verdicts. Later
engines register here without touching callers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from icrm_sgl.errors import InputError, MissingDependencyError

if TYPE_CHECKING:
    from sglang.lang.backend.base_backend import BaseBackend

    from icrm_sgl.engines.hosted import HostedEngine

EngineFactory = Callable[..., "BaseBackend | HostedEngine"]

#: name → "module:function" of the factory, imported lazily.
_ENGINES: dict[str, str] = {
    "local": "icrm_sgl.engines.local:create",
    "sglang": "icrm_sgl.engines.sglang_server:create",
    "openai": "icrm_sgl.engines.hosted.openai_compat:create",
    "together": "icrm_sgl.engines.hosted.openai_compat:create_together",
    "vllm": "icrm_sgl.engines.hosted.openai_compat:create_vllm",
    "mistral": "icrm_sgl.engines.hosted.openai_compat:create_mistral",
    "claude": "icrm_sgl.engines.hosted.claude:create",
}


def register_engine(name: str, target: str) -> None:
    """Register (or replace) an engine factory given as ``"module:function"``."""
    _ENGINES[name] = target


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def create_engine(
    name: str, model_name: str | None = None, **options: Any
) -> BaseBackend | HostedEngine:
    """Build the backend registered under ``name``."""
    target = _ENGINES.get(name)
    if target is None:
        raise InputError(f"unknown engine {name!r}: choose one of {', '.join(engine_names())}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"engine {name!r} needs the package {exc.name!r}: pip install {exc.name}"
        ) from None
    factory: EngineFactory = getattr(module, attr)
    try:
        return factory(model_name=model_name, **options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"engine {name!r}: bad option(s): {problems}") from None
