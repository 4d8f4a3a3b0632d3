"""An engine's identity for cache keys and resume checks: what ran, not what was asked."""

from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import Any

from icrm_sgl.engines.protocol import Engine

#: Settings that change how a run goes (speed, logging, retries), never its verdicts.
_RUN_ONLY = frozenset(
    {
        "api_key",
        "backoff_base",
        "backoff_cap",
        "batch_threads",
        "cache_mib",
        "generate_timeout",
        "launch_timeout",
        "log_path",
        "max_attempts",
        "n_seq",
        "n_threads",
        "python",
        "request_timeout",
        "server_env",
        "timeout",
    }
)


@cache
def package_version() -> str:
    """icrm-sgl's installed version (``unknown`` when run from a bare source tree)."""
    try:
        return metadata.version("icrm-sgl")
    except metadata.PackageNotFoundError:
        return "unknown"


def engine_identity(engine: Engine) -> dict[str, Any]:
    """Class, model, version and every resolved option that can change a verdict."""
    cls = type(engine)
    options = engine.options.model_dump(mode="json")
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "model": engine.get_model_name(),
        "version": package_version(),
        "options": {k: v for k, v in sorted(options.items()) if k not in _RUN_ONLY},
    }
