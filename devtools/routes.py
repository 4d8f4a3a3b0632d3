"""What the server reported for each ``/generate`` request, and where a router sent it: for
the router tests and the sglang benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import requests

from icrm_sgl.engines.sglang.router import ROUTING_KEY_HEADER

#: smg's response header naming the worker a request went to.
ROUTED_WORKER = "x-smg-routed-worker-id"


@dataclass
class Route:
    """One ``/generate`` answer (``key`` and ``worker`` empty without a router); one that
    is not a 200 (a router's busy 503) is noted with its status and no tokens."""

    key: str
    worker: str
    prompt_tokens: int
    cached_tokens: int
    status: int = 200


def served(routes: list[Route]) -> list[Route]:
    """The requests a worker answered (200)."""
    return [r for r in routes if r.status == 200]


@contextlib.contextmanager
def recorded_routes() -> Iterator[list[Route]]:
    """Note every ``/generate`` answer received through ``requests`` while open."""
    routes: list[Route] = []
    real_post = requests.Session.post

    def post(self, url, *args, **kwargs):
        res = real_post(self, url, *args, **kwargs)
        key = (kwargs.get("headers") or {}).get(ROUTING_KEY_HEADER, "")
        if url.endswith("/generate"):
            meta = res.json().get("meta_info", {}) if res.status_code == 200 else {}
            worker = res.headers.get(ROUTED_WORKER, "")
            prompt, cached = meta.get("prompt_tokens", 0), meta.get("cached_tokens", 0)
            routes.append(Route(key, worker, prompt, cached, res.status_code))
        return res

    requests.Session.post = post
    try:
        yield routes
    finally:
        requests.Session.post = real_post


def workers_per_key(routes: list[Route]) -> dict[str, set[str]]:
    """The workers each routing key's requests went to."""
    out: dict[str, set[str]] = {}
    for r in served(routes):
        if r.key:
            out.setdefault(r.key, set()).add(r.worker)
    return out


def cached_share(routes: list[Route]) -> float:
    """Cached share of every prompt token the server was sent."""
    prompt = sum(r.prompt_tokens for r in routes)
    return round(sum(r.cached_tokens for r in routes) / prompt, 4) if prompt else 0.0


def per_worker(routes: list[Route]) -> dict[str, dict[str, float]]:
    """Per worker: routing keys first sent there, requests, and cached share of prompts."""
    keyed = [r for r in served(routes) if r.key]
    first: dict[str, str] = {}
    for r in keyed:
        first.setdefault(r.key, r.worker)
    out: dict[str, dict[str, float]] = {}
    for worker in sorted({r.worker for r in keyed}):
        mine = [r for r in keyed if r.worker == worker]
        out[worker] = {
            "verdicts": sum(w == worker for w in first.values()),
            "requests": len(mine),
            "cached_share": cached_share(mine),
        }
    return out
