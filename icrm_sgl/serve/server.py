"""Run the app under uvicorn: SIGINT / SIGTERM stop new work at once, let queued and
running examples finish for ``drain_timeout`` seconds, then stop the engine."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from icrm_sgl.serve.app import create_app
from icrm_sgl.serve.config import ServeConfig
from icrm_sgl.serve.judges import Judges

log = logging.getLogger("uvicorn.error")  # printed with uvicorn's own lines


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the batcher to drain as soon as a signal arrives (uvicorn
    itself closes the listening socket and waits for open requests)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_timeout = drain_timeout

    def handle_exit(self, sig: int, frame: Any) -> None:
        state = getattr(self.app.state, "icrm", None)  # None while the engine still loads
        if state is not None:
            log.info("signal %s: draining for up to %g s", sig, self.drain_timeout)
            state.batcher.begin_drain(self.drain_timeout)
        super().handle_exit(sig, frame)


def run(config: ServeConfig, open_judges: Callable[[], Judges], log_level: str = "info") -> None:
    """Serve until a signal; returns once the engine is stopped."""
    app = create_app(config, open_judges)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=log_level,
        timeout_graceful_shutdown=int(config.shutdown_grace),
        lifespan="on",
    )
    server = _DrainingServer(uv_config, app, config.drain_timeout)
    server.run()
