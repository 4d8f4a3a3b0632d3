"""Run the app under uvicorn: SIGINT / SIGTERM stop new work at once, let queued and
running examples finish for ``drain_timeout`` seconds (answering /health with 503
"draining" meanwhile), then stop the engine."""

from __future__ import annotations

import logging
import socket
import threading
import time
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
    """uvicorn's server, draining before it stops listening: on the first signal the
    batcher refuses new work (503) and /health answers 503 "draining" while queued
    examples are judged; uvicorn's own shutdown starts once the queue is empty or the
    drain deadline passed. A second signal stops at once."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_timeout = drain_timeout
        self._draining = False

    def handle_exit(self, sig: int, frame: Any) -> None:
        state = getattr(self.app.state, "icrm", None)  # None while the engine still loads
        if state is None or self._draining:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        log.info("signal %s: draining for up to %g s", sig, self.drain_timeout)
        state.batcher.begin_drain(self.drain_timeout)
        watcher = threading.Thread(
            target=self._stop_when_idle, args=(state.batcher, sig, frame), daemon=True
        )
        watcher.start()

    def _stop_when_idle(self, batcher: Batcher, sig: int, frame: Any) -> None:
        while not batcher.drained() and not batcher.idle():
            time.sleep(0.1)
        super().handle_exit(sig, frame)


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
