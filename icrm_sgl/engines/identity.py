"""An engine's identity for cache keys and resume checks: what ran, not what was asked."""

from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import Any

from icrm_sgl.engines.protocol import Engine


@cache
def package_version() -> str:
    """icrm-sgl's installed version (``unknown`` when run from a bare source tree)."""
    try:
        return metadata.version("icrm-sgl")
    except metadata.PackageNotFoundError:
        return "unknown"


def engine_identity(engine: Engine) -> dict[str, Any]:
    """Class, model, version and every resolved option that can change a verdict (the
    engine's options name the others in ``run_only``)."""
    cls = type(engine)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "model": engine.get_model_name(),
        "version": package_version(),
        "options": engine.options.verdict_settings(),
    }
