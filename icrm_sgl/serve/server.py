"""Run the app under uvicorn: SIGINT / SIGTERM stop new work at once (503), let queued and
running examples finish for ``drain_timeout`` seconds while still listening (answering
/health with 503 "draining" meanwhile), then stop listening and stop the engine."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from icrm_sgl.errors import InputError
from icrm_sgl.serve.app import create_app
from icrm_sgl.serve.batcher import Batcher
from icrm_sgl.serve.config import ServeConfig
from icrm_sgl.serve.judges import Judges

log = logging.getLogger("uvicorn.error")  # printed with uvicorn's own lines


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, listening until the drain is over: on the first signal the
    batcher refuses new work (503) and /health answers 503 "draining"; uvicorn's own
    shutdown, which closes the listening socket first, starts only once nothing is queued
    or in the engine (or the engine overran its grace). A second signal starts that
    shutdown at once."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_timeout = drain_timeout
        self._drain_signal: int | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        batcher = self._batcher()
        if batcher is None or self._drain_signal is not None:
            super().handle_exit(sig, frame)
            return
        self._drain_signal = sig
        log.info("signal %s: draining for up to %g s", sig, self.drain_timeout)
        batcher.begin_drain(self.drain_timeout)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick (every 0.1 s), which also starts the shutdown once the drain is
        over, as if the signal had just arrived (uvicorn then re-raises it on exit)."""
        sig = self._drain_signal
        if sig is not None and not self.should_exit and self._drain_over():
            super().handle_exit(sig, None)
        return await super().on_tick(counter)

    def _drain_over(self) -> bool:
        batcher = self._batcher()
        return batcher is not None and batcher.drain_over()

    def _batcher(self) -> Batcher | None:
        """The app's batcher; None while the engine still loads."""
        state = getattr(self.app.state, "icrm", None)
        return state.batcher if state is not None else None


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, taken before the engine loads: a port in use is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def run(
    config: ServeConfig,
    open_judges: Callable[[], Judges],
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve until a signal (on ``sock`` when given); returns once the engine is stopped."""
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
    server.run(sockets=[sock] if sock is not None else None)
