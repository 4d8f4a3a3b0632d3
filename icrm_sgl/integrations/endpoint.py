"""Rewards from a running ``icrm-sgl serve`` over OpenRLHF's ``/get_reward``: batched
requests, ``429`` / ``503`` retried by the one busy-retry policy (``engines.retry``:
``Retry-After`` or a jittered back-off), and the whole call bounded by one deadline, so a
training step never waits forever.

A socket timeout bounds each read, not an answer: a server that sends a byte now and then
would hold the call for as long as it likes. So every exchange runs under a watchdog that
shuts its connection at the deadline (the standard library's ``http.client`` gives the
socket to shut; ``requests`` hides it). Connecting gets the time left as its timeout, and
the deadline is checked again once connected; name resolution is bounded only by the
system's resolver, and a host with several addresses may take that timeout once for each.

As ``requests`` would: HTTPS trusts the system's certificates (``SSL_CERT_FILE``,
``SSL_CERT_DIR``) and ``REQUESTS_CA_BUNDLE`` (else ``certifi``'s bundle); ``HTTP_PROXY`` /
``HTTPS_PROXY`` / ``ALL_PROXY`` carry the requests unless ``NO_PROXY`` names the host (an
``http://`` proxy: the whole URL to it, or a ``CONNECT`` tunnel for ``https``). An answer
is read up to ``MAX_ANSWER_BYTES``."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from icrm_sgl.engines.hosted.base import connection_error, status_error
from icrm_sgl.engines.retry import RetryPolicy
from icrm_sgl.errors import EngineError, InputError
from icrm_sgl.integrations.outcome import Failure, Outcome
from icrm_sgl.judging.settings import EndpointSettings

#: Statuses that mean "busy or going away, ask again".
_RETRY = (429, 503)
#: Tries per request; the call's ``timeout`` bounds them too.
_MAX_ATTEMPTS = 20
#: The longest answer read, in bytes (rewards for thousands of queries take far less): a
#: server gone wrong could otherwise fill the memory of the training process.
MAX_ANSWER_BYTES = 64 * 2**20


class Query(NamedTuple):
    """One ``/get_reward`` query: the prompt, the reply after it, and per-query fields
    (dataset columns) for a served judge whose template uses them."""

    prompt: str
    reply: str
    fields: dict[str, Any]


class _Answer(NamedTuple):
    """One HTTP answer, read in full."""

    status: int
    retry_after: str | None
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Logs(BaseModel):
    """``extra_logs`` of a ``/get_reward`` answer: which queries got no verdict."""

    model_config = ConfigDict(strict=True)

    icrm_failed: list[float] | None = None


class _RewardReply(BaseModel):
    """OpenRLHF's ``/get_reward`` answer: one number per query (other keys are ignored)."""

    model_config = ConfigDict(strict=True)

    rewards: list[float]
    extra_logs: _Logs | None = None


@dataclass(frozen=True)
class _Route:
    """How requests reach the server: straight to it, or through a proxy."""

    #: Where the connection goes: the server, or the proxy.
    host: str
    port: int
    #: TLS with the server (through the tunnel when proxied); None for http.
    tls: ssl.SSLContext | None
    #: The request line's target: the path, or the whole URL when a proxy forwards it.
    target: str
    #: The server that a ``CONNECT`` through the proxy reaches (https behind a proxy).
    tunnel: tuple[str, int] | None = None
    #: ``Proxy-Authorization`` when the proxy's URL names a user.
    proxy_headers: dict[str, str] = field(default_factory=dict)
    #: The proxy, as messages name it (without its credentials).
    proxy: str | None = None


class _TooLarge(Exception):
    """An answer longer than ``MAX_ANSWER_BYTES``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an answer over {limit / 2**20:g} MiB")


class RewardEndpoint:
    """A ``/get_reward`` URL and how to talk to it (``EndpointSettings``); the proxy and the
    trusted certificates are read from the environment when it is made."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.url = settings.endpoint
        self.api_key = settings.api_key or os.environ.get("ICRM_API_KEY")
        self.route = _route(self.url)
        through = f" (through the proxy {self.route.proxy})" if self.route.proxy else ""
        self.where = f"reward endpoint {self.url}{through}"

    def rewards(self, pairs: Sequence[Query]) -> list[Outcome]:
        """A reward or an error message per query, in order; ``EngineError``
        when the server cannot be reached, stays busy or answers past the timeout, or
        answers something other than rewards."""
        deadline = time.monotonic() + self.settings.timeout
        outcomes: list[Outcome] = []
        size = self.settings.batch_size
        while len(outcomes) < len(pairs):
            chunk = list(pairs[len(outcomes) : len(outcomes) + size])
            answer = self._post(chunk, deadline)
            if answer.status == 413 and size > 1:
                size //= 2  # more examples than the server's queue holds: smaller requests
                continue
            outcomes += self._read(chunk, answer, deadline)
        return outcomes

    def _read(self, chunk: list[Query], answer: _Answer, deadline: float) -> list[Outcome]:
        """Rewards from a 200; a 500 or 422 that names examples fails those and re-sends
        the others; anything else is an ``EngineError``."""
        if answer.status == 200:
            return self._rewards(answer, len(chunk))
        named = _named_failures(_json_object(answer.body))
        if answer.status not in (422, 500) or not named:
            raise status_error(answer.status, answer.text, self.where, self.api_key)
        rest = [i for i in range(len(chunk)) if i not in named]
        others = [chunk[i] for i in rest]
        again = self._read(others, self._post(others, deadline), deadline) if rest else []
        bad_input = answer.status == 422
        outcomes: dict[int, Outcome] = {i: Failure(m, bad_input) for i, m in named.items()}
        outcomes.update(zip(rest, again, strict=True))
        return [outcomes[i] for i in range(len(chunk))]

    def _rewards(self, answer: _Answer, count: int) -> list[Outcome]:
        """The ``count`` rewards of a 200, checked; an answer of another shape is an
        ``EngineError`` (a wrong number would become a training signal)."""
        try:
            reply = _RewardReply.model_validate_json(answer.body)
        except ValidationError as exc:
            raise self._malformed(_first_problem(exc)) from None
        logs = reply.extra_logs or _Logs()
        failed = [0.0] * count if logs.icrm_failed is None else logs.icrm_failed
        for key, values in (("rewards", reply.rewards), ("extra_logs.icrm_failed", failed)):
            if len(values) != count:
                raise self._malformed(f"{len(values)} {key} for {count} queries")
        return [
            Failure("no verdict (the server answered its --failed-reward)") if bad else reward
            for reward, bad in zip(reply.rewards, failed, strict=True)
        ]

    def _malformed(self, problem: str) -> EngineError:
        return EngineError(f"{self.where}: not a /get_reward answer: {problem}")

    def _post(self, chunk: list[Query], deadline: float) -> _Answer:
        """One request, retried under the busy-retry policy while the server is busy or
        unreachable, until ``deadline``."""
        body = _request_body(chunk)
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"

        def once() -> _Answer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._too_late()
            headers["X-ICRM-Deadline"] = f"{remaining:.3f}"
            try:
                answer = _exchange(self.route, body.encode("utf-8"), headers, deadline)
            except TimeoutError as exc:
                raise self._too_late() from exc
            except _TooLarge as exc:
                raise self._malformed(str(exc)) from None
            except ssl.SSLCertVerificationError as exc:
                raise self._untrusted(exc) from None
            except (OSError, http.client.HTTPException) as exc:
                raise connection_error(exc, self.where) from exc
            if answer.status in _RETRY:
                raise status_error(
                    answer.status, answer.text, self.where, self.api_key, answer.retry_after
                )
            return answer

        budget = max(0.0, deadline - time.monotonic())
        policy = RetryPolicy(_MAX_ATTEMPTS, budget=budget)
        return policy.call(once)[0]

    def _too_late(self) -> EngineError:
        return EngineError(f"{self.where}: no answer within {self.settings.timeout:g} s")

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> EngineError:
        """A certificate that is not accepted: asking again cannot help."""
        reason = str(exc.verify_message or exc.reason or exc).rstrip(".")
        return EngineError(
            f"{self.where}: TLS certificate not accepted ({reason}); a private CA's "
            "certificate goes in REQUESTS_CA_BUNDLE or SSL_CERT_FILE"
        )


def _request_body(chunk: list[Query]) -> str:
    """The ``/get_reward`` request: queries, prompts, and each per-query field as a list
    with a value per query (None where a query has none)."""
    names = sorted({name for q in chunk for name in q.fields} - {"query", "prompts"})
    body: dict[str, Any] = {"query": [q.prompt + q.reply for q in chunk]}
    body["prompts"] = [q.prompt for q in chunk]
    body.update({name: [q.fields.get(name) for q in chunk] for name in names})
    try:
        return json.dumps(body)
    except (TypeError, ValueError) as exc:
        raise InputError(f"dataset columns reach a served judge as JSON; {exc}") from None


def _exchange(route: _Route, body: bytes, headers: dict[str, str], deadline: float) -> _Answer:
    """POST ``body`` and read the whole answer by ``deadline``, else ``TimeoutError``: a
    watchdog shuts the socket then, whichever read is waiting (headers or a trickling
    body). It cannot cut a connection still being made, so connecting has the time left
    as its timeout and the deadline is checked once it is made."""
    left = deadline - time.monotonic()
    connection = _connection(route, max(1e-3, left))
    cut = threading.Event()
    watchdog = threading.Timer(max(0.0, left), _cut, (connection, cut))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.connect()
        left = deadline - time.monotonic()
        if cut.is_set() or left <= 0 or connection.sock is None:
            raise TimeoutError("the deadline passed while connecting")
        connection.sock.settimeout(left)
        connection.request("POST", route.target, body, {**headers, **_forwarded(route)})
        response = connection.getresponse()
        answer = _Answer(response.status, response.getheader("Retry-After"), _body(response))
    except (OSError, http.client.HTTPException) as exc:
        if cut.is_set():
            raise TimeoutError("the deadline passed") from exc
        raise
    finally:
        watchdog.cancel()
        connection.close()
    if cut.is_set():  # a shut socket can also read as the end of the headers
        raise TimeoutError("the deadline passed")
    return answer


def _connection(route: _Route, timeout: float) -> http.client.HTTPConnection:
    """A connection along ``route``, not yet made."""
    if route.tls is None:
        return http.client.HTTPConnection(route.host, route.port, timeout=timeout)
    connection = http.client.HTTPSConnection(
        route.host, route.port, timeout=timeout, context=route.tls
    )
    if route.tunnel is not None:
        connection.set_tunnel(*route.tunnel, headers=route.proxy_headers)
    return connection


def _forwarded(route: _Route) -> dict[str, str]:
    """The proxy's credentials on the request itself, when the proxy forwards it (through
    a tunnel they went with the ``CONNECT``)."""
    return route.proxy_headers if route.tunnel is None else {}


def _body(response: http.client.HTTPResponse) -> bytes:
    """The answer's body, up to ``MAX_ANSWER_BYTES`` (else ``_TooLarge``)."""
    limit = MAX_ANSWER_BYTES
    length = (response.getheader("Content-Length") or "").strip()
    if length.isdigit() and int(length) > limit:
        raise _TooLarge(limit)
    parts: list[bytes] = []
    size = 0
    while chunk := response.read(min(2**20, limit + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _TooLarge(limit)
    return b"".join(parts)


def _route(url: str) -> _Route:
    """How requests to ``url`` (a checked ``EndpointSettings.endpoint``) go: straight, or
    through the proxy the environment names for it."""
    parts = urlsplit(url)
    tls = _tls_context() if parts.scheme == "https" else None
    host, port = parts.hostname or "", parts.port or (443 if tls else 80)
    path = parts.path or "/"
    proxy = _proxy_for(parts)
    if proxy is None:
        return _Route(host, port, tls, path)
    headers = _proxy_credentials(proxy)
    shown = _without_credentials(proxy.geturl())
    proxy_host, proxy_port = proxy.hostname or "", proxy.port or 80
    if tls is None:
        return _Route(proxy_host, proxy_port, None, url, None, headers, shown)
    return _Route(proxy_host, proxy_port, tls, path, (host, port), headers, shown)


def _proxy_for(parts: SplitResult) -> SplitResult | None:
    """The proxy that the environment names for this URL, if any, read as ``requests``
    reads it (the scheme's, else ``ALL_PROXY``; ``NO_PROXY`` exempts a host); one that is
    not an ``http://`` proxy is an ``InputError``."""
    proxies = urllib.request.getproxies()
    given = proxies.get(parts.scheme) or proxies.get("all")
    host = parts.hostname or ""
    if not given or urllib.request.proxy_bypass(f"{host}:{parts.port}" if parts.port else host):
        return None
    proxy = urlsplit(given if "://" in given else f"http://{given}")
    if proxy.scheme != "http" or not proxy.hostname or not _port_ok(proxy):
        raise InputError(
            f"reward endpoint {parts.geturl()}: the proxy {_without_credentials(given)!r} from "
            "the environment is not an http://HOST:PORT proxy (the only kind supported); fix "
            "it, or add the host to NO_PROXY"
        )
    return proxy


def _without_credentials(url: str) -> str:
    """A proxy's URL as messages show it: no user or password."""
    scheme, sep, rest = url.rpartition("://")
    return scheme + sep + rest.rpartition("@")[2]


def _port_ok(parts: SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        return False
    return True


def _proxy_credentials(proxy: SplitResult) -> dict[str, str]:
    """``Proxy-Authorization`` for a proxy URL with a user (``http://user:pass@host``)."""
    if proxy.username is None:
        return {}
    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def _tls_context() -> ssl.SSLContext:
    """Certificates checked against the system's CAs (``SSL_CERT_FILE``, ``SSL_CERT_DIR``
    through OpenSSL's default paths) and the bundle ``requests`` uses:
    ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``), else ``certifi``'s."""
    import certifi  # installed with requests

    context = ssl.create_default_context()
    env = next((n for n in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if os.environ.get(n)), None)
    bundle = os.environ[env] if env else certifi.where()
    try:
        if os.path.isdir(bundle):
            context.load_verify_locations(capath=bundle)
        else:
            context.load_verify_locations(cafile=bundle)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise InputError(
            f"{env or 'certifi'}={bundle}: cannot read CA certificates ({reason})"
        ) from None
    return context


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """Shut the connection's socket, which wakes a read blocked on it in another thread."""
    cut.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # closed meanwhile
            sock.shutdown(socket.SHUT_RDWR)


def _json_object(body: bytes) -> dict[str, Any]:
    """An error answer's JSON object, or nothing when it has none."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _named_failures(body: dict[str, Any]) -> dict[int, str]:
    """Example index -> message, from a 500's ``failures`` or a 422's ``problems``."""
    named: dict[Any, Any] = {}
    for key, index, message in (("failures", "index", "error"), ("problems", "example", "message")):
        items = body.get(key)
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict):
                named[item.get(index)] = item.get(message)
    return {i: str(m) for i, m in named.items() if isinstance(i, int) and not isinstance(i, bool)}


def _first_problem(exc: ValidationError) -> str:
    """A reply's first problem in a few words: where in the JSON, and what is wrong."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
