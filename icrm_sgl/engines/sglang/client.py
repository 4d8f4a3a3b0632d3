"""Talking to an sglang server or router: health, the served model's info, busy answers."""

from __future__ import annotations

import requests

from icrm_sgl.errors import EngineError

#: Answers that mean "busy, ask again": rate limited, no worker ready behind a router
#: (smg's 503 with its circuit breaker open), a gateway without an answer.
BUSY_STATUSES = frozenset({429, 502, 503, 504})


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _get(url: str, api_key: str | None, timeout: float) -> requests.Response:
    """GET with a short timeout; unreachable servers become one-line ``EngineError``s."""
    try:
        return requests.get(url, headers=auth_headers(api_key), timeout=timeout)
    except requests.Timeout as exc:
        raise EngineError(f"sglang engine: no answer from {url} within {timeout:g} s") from exc
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise EngineError(f"sglang engine: cannot reach {url} ({reason}); is it running?") from exc


def fetch_model_info(base_url: str, api_key: str | None = None, timeout: float = 10.0) -> dict:
    """Check ``/health`` and read the served model's info (``/model_info``, else the older
    ``/get_model_info`` that routers and RuntimeEndpoint use)."""
    health = _get(f"{base_url}/health", api_key, timeout)
    if health.status_code != 200:
        raise EngineError(
            f"sglang engine: {base_url} is not healthy (GET /health: HTTP {health.status_code})"
        )
    for path in ("/model_info", "/get_model_info"):
        res = _get(base_url + path, api_key, timeout)
        if res.status_code == 200:
            return res.json()
    raise EngineError(f"sglang engine: {base_url} has no model info (HTTP {res.status_code})")


def _name_forms(name: str) -> set[str]:
    clean = name.rstrip("/").lower()
    return {clean, clean.rsplit("/", 1)[-1]}


def check_model(model_name: str | None, info: dict, base_url: str) -> None:
    """Fail when the server serves another model than the one asked for (basename match)."""
    served = [info[k] for k in ("model_path", "served_model_name") if info.get(k)]
    if not model_name or not served:
        return
    if any(_name_forms(model_name) & _name_forms(s) for s in served):
        return
    raise EngineError(f"sglang engine: {base_url} serves {served[0]!r}, not {model_name!r}")


def server_dp_size(base_url: str, api_key: str | None, timeout: float) -> int:
    """The server's data-parallel size (1 for a router, which has no ``/server_info``)."""
    for path in ("/server_info", "/get_server_info"):
        res = _get(base_url + path, api_key, timeout)
        if res.status_code == 200:
            return int(res.json().get("dp_size") or 1)
    return 1
