"""Connect to an sglang server or router, or launch them.

When no endpoint is given, ``sglang.launch_server`` is started on a free local port with
``num_gpu_per_worker`` tensor-parallel GPUs; with ``num_workers`` > 1, that many servers
behind sglang's router (``routing=router``) or one server with ``--dp-size``
(``routing=dp``). Everything launched stops with its process group.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from typing import Any

from icrm_sgl.engines.server_process import (
    HOST,
    ServerGroup,
    ServerProcess,
    check_gpus,
    default_log_path,
    free_port,
    serve,
    spawn,
)
from icrm_sgl.engines.sglang.backend import SglangBackend
from icrm_sgl.engines.sglang.client import (
    auth_headers,
    check_model,
    fetch_model_info,
    server_dp_size,
)
from icrm_sgl.engines.sglang.options import SglangOptions
from icrm_sgl.engines.sglang.router import (
    healthy_worker_urls,
    router_workers,
    spawn_router,
    wait_for_workers,
)
from icrm_sgl.errors import EngineError


def launch_command(
    model_name: str, options: SglangOptions, port: int, worker: int | None = None
) -> list[str]:
    """The ``sglang.launch_server`` command line for these options: the whole data-parallel
    server, or worker number ``worker`` (its own GPUs) of a routed fleet."""
    tp = options.num_gpu_per_worker
    cmd = [options.python, "-m", "sglang.launch_server", "--model-path", model_name]
    dp = options.num_workers if worker is None else 1
    cmd += ["--tp-size", str(tp), "--dp-size", str(dp), "--host", HOST, "--port", str(port)]
    if worker and options.device == "cuda":
        cmd += ["--base-gpu-id", str(worker * tp)]
    if options.device != "cuda":
        cmd += ["--device", options.device]
    for flag, value in (("--dtype", options.dtype), ("--quantization", options.quantization)):
        if value:
            cmd += [flag, value]
    if options.seed is not None:
        cmd += ["--random-seed", str(options.seed)]
    if options.api_key:
        cmd += ["--api-key", options.api_key]
    return cmd + list(options.server_args)


def connect(
    base_url: str, options: SglangOptions, server: ServerProcess | ServerGroup | None = None
) -> SglangBackend:
    """A backend for a healthy server or router that serves ``options.model_name``."""
    listed = router_workers(base_url, auth_headers(options.api_key), options.request_timeout)
    healthy = [w for w in listed or [] if w.get("is_healthy", True)]
    if listed is not None and not healthy:
        raise EngineError(
            f"sglang engine: the router at {base_url} has no healthy worker "
            f"({len(listed)} listed at GET /workers); are its servers running?"
        )
    info = fetch_model_info(base_url, options.api_key, options.request_timeout)
    check_model(options.model_name, info, base_url)
    if listed is not None:
        workers = healthy_worker_urls(healthy)
        return SglangBackend(base_url, info, options, server, workers=workers)
    dp_size = server_dp_size(base_url, options.api_key, options.request_timeout)
    return SglangBackend(base_url, info, options, server, dp_size)


def _worker_env(options: SglangOptions) -> dict[str, str] | None:
    return {**os.environ, **options.server_env} if options.server_env else None


def _launch_server(options: SglangOptions) -> ServerProcess:
    assert options.model_name is not None  # SglangOptions requires it without an endpoint
    port = free_port()
    return serve(
        launch_command(options.model_name, options, port),
        port,
        options.launch_timeout,
        options.log_path or default_log_path("icrm-sglang-"),
        health_path="/health_generate",
        headers=auth_headers(options.api_key),
        name="sglang server",
        env=_worker_env(options),
    )


def _launch_routed(options: SglangOptions) -> ServerGroup:
    """``num_workers`` servers, started together, then sglang's router in front of them."""
    if options.python == sys.executable and importlib.util.find_spec("smg") is None:
        raise EngineError(
            "sglang engine: num_workers > 1 launches sglang's router, which is not installed: "
            "pip install 'icrm-sgl[router]' (or -E routing=dp for one --dp-size server)"
        )
    assert options.model_name is not None  # SglangOptions requires it without an endpoint
    deadline = time.monotonic() + options.launch_timeout
    headers = auth_headers(options.api_key)
    base_log = options.log_path or default_log_path("icrm-sglang-router-")
    members: list[ServerProcess] = []
    try:
        for i in range(options.num_workers):
            port = free_port()
            cmd = launch_command(options.model_name, options, port, worker=i)
            members.append(spawn(cmd, port, f"{base_log}.worker{i}", _worker_env(options)))
        for i, worker in enumerate(members):
            left = max(deadline - time.monotonic(), 1.0)
            worker.wait_ready(left, "/health_generate", headers, f"sglang worker {i}")
        router = spawn_router(
            options.python,
            [w.url for w in members],
            options.router_policy,
            options.router_sticky,
            options.api_key,
            options.router_args,
            base_log,
        )
        members.insert(0, router)
        router.wait_ready(
            max(deadline - time.monotonic(), 1.0), "/health", headers, "sglang router"
        )
        wait_for_workers(
            router, options.num_workers, headers, max(deadline - time.monotonic(), 1.0)
        )
    except BaseException:
        if members:
            ServerGroup(members).stop()
        raise
    return ServerGroup(members)


def launch(options: SglangOptions) -> SglangBackend:
    """Launch sglang server(s) for ``options.model_name`` and connect to them."""
    if options.device == "cuda":
        check_gpus("sglang", options.num_workers, options.num_gpu_per_worker)
    routed = options.num_workers > 1 and options.routing == "router"
    server = _launch_routed(options) if routed else _launch_server(options)
    try:
        return connect(server.url, options, server)
    except BaseException:
        server.stop()
        raise


def create(model_name: str | None = None, **options: Any) -> SglangBackend:
    """Registry factory: connect to ``endpoint`` if given, else launch a server."""
    opts = SglangOptions(model_name=model_name, **options)
    return connect(opts.endpoint, opts) if opts.endpoint else launch(opts)
