"""What a hosted engine needs, checked before the command line imports sglang and the
client libraries (15-20 s on a busy machine): an API key where the provider needs one,
and a server that accepts a connection at a ``base_url`` of your own.

Each problem is one line (exit 2). The engines check the key themselves as well
(``base.resolve_key``); this only says it sooner.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from icrm_sgl.engines.hosted.presets import CLAUDE_KEY_ENV, PRESETS, needs_key
from icrm_sgl.errors import EngineError, InputError

#: Seconds a connection to the server may take before it counts as unreachable.
CONNECT_TIMEOUT = 5.0


def preflight(name: str, model_name: Any, options: Mapping[str, Any]) -> None:
    """Refuse a hosted engine's settings that cannot work: a missing API key (``InputError``)
    or a ``base_url`` / ``endpoint`` no server answers on (``EngineError``). Other engines,
    registered ones included, pass unchecked."""
    base_url = options.get("base_url") or options.get("endpoint")
    if name == "claude":
        key_env, key_wanted, url = CLAUDE_KEY_ENV, not base_url, base_url
    elif name in PRESETS:
        preset = PRESETS[name]
        key_env, key_wanted, url = preset.key_env, needs_key(preset, base_url), base_url
        if name == "vllm" and url is None and model_name is None:
            url = preset.base_url  # no model to launch: the engine connects to the default
    else:
        return
    if key_wanted and options.get("api_key") is None and not os.environ.get(key_env):
        raise missing_key(f"{name} engine", key_env)
    if url:
        check_reachable(str(url), f"{name} engine ({url})")


def missing_key(where: str, env_var: str) -> InputError:
    """The one wording of a missing API key (the engines raise it too)."""
    return InputError(f"{where} needs an API key: set {env_var} or pass api_key (-E api_key=...)")


def check_reachable(url: str, where: str) -> None:
    """Open and close one TCP connection to the URL's host and port; an ``EngineError``
    naming the URL when that fails. Skipped where a proxy from the environment would
    carry the requests (the connection would then not be the one the client makes)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{where}: not an http(s) URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InputError(f"{where}: bad port ({exc})") from None
    if _proxied(parts.scheme, parts.hostname):
        return
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT):
            pass
    except TimeoutError:
        raise EngineError(
            f"{where}: cannot reach the server (no answer within {CONNECT_TIMEOUT:g} s)"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise EngineError(f"{where}: cannot reach the server ({reason})") from None


def _proxied(scheme: str, host: str) -> bool:
    proxies = urllib.request.getproxies()
    return bool(proxies.get(scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(host)
