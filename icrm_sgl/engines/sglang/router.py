"""sglang's router (``smg``) in front of several sglang servers: launch it, find its workers.

A router takes one text per ``/generate`` request and picks a worker for each request by
its policy. The sglang engine sends every request of one program run with the same
``X-SMG-Routing-Key`` header. The router the engine launches hashes that key to a worker
(``consistent_hashing``), so a verdict's requests stay on one worker and verdicts spread
over all of them; with another policy, sticky keys (``--routing-key-override``, new keys
to the least-loaded worker) do the same. Cache-aware routing alone sends every verdict to
the worker that holds the shared few-shot prefix, that is, to one worker.
"""

from __future__ import annotations

from typing import Literal, get_args

import requests

from icrm_sgl.engines.retry import poll_until
from icrm_sgl.engines.server_process import HOST, ServerProcess, free_port, spawn
from icrm_sgl.errors import EngineError

#: The header smg reads the routing key from (``--routing-key-headers`` default).
ROUTING_KEY_HEADER = "X-SMG-Routing-Key"

#: Policies of ``smg.launch_router`` that the engine may launch with.
Policy = Literal["consistent_hashing", "cache_aware", "round_robin", "power_of_two", "random"]
POLICIES: tuple[str, ...] = get_args(Policy)


def router_command(
    python: str,
    port: int,
    worker_urls: list[str],
    policy: str,
    sticky: bool,
    api_key: str | None,
    extra: list[str],
) -> list[str]:
    """The ``smg.launch_router`` command line: loopback only, metrics on a free port.
    ``sticky`` pins each routing key to one worker under a policy that does not hash it."""
    cmd = [python, "-m", "smg.launch_router", "--host", HOST, "--port", str(port)]
    cmd += ["--worker-urls", *worker_urls, "--policy", policy]
    cmd += ["--prometheus-host", HOST, "--prometheus-port", str(free_port())]
    # A CPU or busy worker can take seconds to answer /health; do not evict it for that.
    cmd += ["--health-check-timeout-secs", "30"]
    # A worker back from an outage rejoins at the next good check, not after two checks a
    # minute apart (smg's defaults) while every request meanwhile is answered 503.
    cmd += ["--health-check-interval-secs", "10", "--health-success-threshold", "1"]
    if sticky and policy != "consistent_hashing":
        cmd += ["--routing-key-override", "--assignment-mode", "min_load"]
    if api_key:
        cmd += ["--api-key", api_key]
    return cmd + list(extra)


def router_workers(base_url: str, headers: dict[str, str], timeout: float) -> list[dict] | None:
    """The workers a router lists at ``GET /workers``; ``None`` when ``base_url`` is a
    server (it has no such route)."""
    try:
        res = requests.get(f"{base_url}/workers", headers=headers, timeout=timeout)
    except requests.RequestException:
        return None
    if res.status_code != 200:
        return None
    try:
        body = res.json()
    except ValueError:
        return None
    workers = body.get("workers") if isinstance(body, dict) else body
    return workers if isinstance(workers, list) else None


def worker_url(worker: dict) -> str | None:
    """A listed worker's base URL."""
    url = worker.get("url") or worker.get("worker_url")
    return url.rstrip("/") if isinstance(url, str) else None


def healthy_worker_urls(workers: list[dict] | None) -> list[str]:
    """The base URLs of the listed workers that the router counts as healthy."""
    healthy = [w for w in workers or [] if w.get("is_healthy", True)]
    return [url for url in map(worker_url, healthy) if url]


def wait_for_workers(
    router: ServerProcess, count: int, headers: dict[str, str], timeout: float
) -> None:
    """Wait until the router lists ``count`` healthy workers (its ``/health`` answers
    before it has registered any)."""

    def healthy_workers(left: float) -> int:
        code = router.proc.poll()
        if code is not None:
            raise EngineError(f"sglang router exited with code {code}; log: {router.log_path}")
        workers = router_workers(router.url, headers, timeout=5) or []
        return sum(1 for w in workers if w.get("is_healthy", True))

    def timed_out(healthy: int) -> EngineError:
        return EngineError(
            f"sglang router lists {healthy} of {count} workers healthy after "
            f"{timeout:g} s; log: {router.log_path}"
        )

    poll_until(healthy_workers, lambda n: n >= count, timeout, timed_out, first=0.5, interval=0.5)


def spawn_router(
    python: str,
    worker_urls: list[str],
    policy: str,
    sticky: bool,
    api_key: str | None,
    extra: list[str],
    log_path: str,
) -> ServerProcess:
    """Start ``smg.launch_router`` in front of ``worker_urls`` (not yet waited for)."""
    port = free_port()
    cmd = router_command(python, port, worker_urls, policy, sticky, api_key, extra)
    return spawn(cmd, port, log_path)
