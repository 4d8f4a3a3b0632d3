"""``ICRMReward(endpoint=...)`` against misbehaving servers: real sockets on 127.0.0.1 that
trickle their answer, answer busy, or answer a 200 that is not ``/get_reward``'s. The call
keeps one deadline, retries busy answers within it, and turns a malformed answer into one
``EngineError``. HTTPS (a private CA), proxies from the environment and oversized answers
are served by the same small servers."""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from icrm_sgl.errors import EngineError, InputError
from icrm_sgl.integrations import endpoint
from icrm_sgl.integrations.trl import ICRMReward

#: What a handler gets: the connected socket, after the request was read in full.
Handler = Callable[[socket.socket], None]


#: Every test here sees only the proxy settings it makes.
_PROXY_VARIABLES = [
    f"{name}_proxy" for name in ("http", "https", "all", "no", "HTTP", "HTTPS", "ALL", "NO")
]


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP request's head and what arrived of its body; ``ConnectionError`` when the
    client hangs up first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the client hung up")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def _read_request(conn: socket.socket) -> bytes:
    """Read one HTTP request (headers, then the Content-Length body); its head."""
    head, body = _read_head(conn)
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the client hung up")
        body += chunk
    return head


@contextmanager
def http_server(handler: Handler, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A threaded TCP server on 127.0.0.1 (over TLS with ``tls``) that reads each request
    and lets ``handler`` answer on the raw socket; yields its base URL."""

    class Answer(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with contextlib.suppress(OSError):  # the client hung up: the deadline tests' end
                conn = self.request
                if tls is not None:
                    conn = tls.wrap_socket(conn, server_side=True)
                _read_request(conn)
                handler(conn)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Answer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def answer(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def trickle(prefix: bytes, stop: threading.Event, every: float = 0.5) -> Handler:
    """Send ``prefix``, then one byte every ``every`` seconds until ``stop`` or a hang-up."""

    def handle(conn: socket.socket) -> None:
        conn.sendall(prefix)
        while not stop.wait(every):
            conn.sendall(b" ")

    return handle


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", id="body"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Slow:", id="headers"),
    ],
)
def test_a_trickling_server_cannot_hold_the_call_past_its_timeout(prefix):
    """Each byte arrives well within a socket timeout, so only a deadline on the whole
    answer ends the call (the probe saw 19.6 s for timeout=4, and forever for more)."""
    stop = threading.Event()
    with http_server(trickle(prefix, stop)) as url:
        reward = ICRMReward(endpoint=url, timeout=2)
        started = time.monotonic()
        with pytest.raises(EngineError, match=r"no answer within 2 s"):
            reward(["q"], ["a"])
        took = time.monotonic() - started
        stop.set()
    assert 1.9 <= took < 3.5, took


def test_busy_answers_are_retried_within_the_deadline():
    """Two 429s with Retry-After, then the rewards: one call, one answer."""
    served: list[int] = []

    def handle(conn: socket.socket) -> None:
        served.append(1)
        if len(served) <= 2:
            conn.sendall(answer("429 Too Many Requests", b"busy", "Retry-After: 0.2"))
        else:
            conn.sendall(answer("200 OK", json.dumps({"rewards": [7, 3.5]}).encode()))

    with http_server(handle) as url:
        assert ICRMReward(endpoint=url, timeout=10)(["q", "r"], ["a", "b"]) == [7, 3.5]
    assert len(served) == 3


def test_a_server_busy_past_the_timeout_ends_the_call_at_its_deadline():
    def handle(conn: socket.socket) -> None:
        conn.sendall(answer("503 Service Unavailable", b"draining", "Retry-After: 0.3"))

    with http_server(handle) as url:
        started = time.monotonic()
        # The last busy answer, or the deadline, if that try started just before it.
        with pytest.raises(EngineError, match=r"HTTP 503|no answer within 2 s"):
            ICRMReward(endpoint=url, timeout=2)(["q"], ["a"])
    assert time.monotonic() - started < 3.0


def test_a_failed_verdict_in_a_200_is_no_reward():
    body = {"rewards": [8.0, 0.0], "extra_logs": {"icrm_failed": [0.0, 1.0]}}

    def handle(conn: socket.socket) -> None:
        conn.sendall(answer("200 OK", json.dumps(body).encode()))

    with http_server(handle) as url:
        assert ICRMReward(endpoint=url, timeout=10)(["q", "r"], ["a", "b"]) == [8.0, None]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(b"<html>oops</html>", "Invalid JSON", id="not-json"),
        pytest.param(b"null", "Input should be an object", id="null"),
        pytest.param(b'"rewards"', "Input should be an object", id="string"),
        pytest.param(b"[7.0, 3.0]", "Input should be an object", id="list"),
        pytest.param(b'{"scores": [7.0, 3.0]}', "rewards: Field required", id="no-rewards"),
        pytest.param(
            b'{"rewards": null}', "rewards: Input should be a valid array", id="null-list"
        ),
        pytest.param(b'{"rewards": [7.0]}', "1 rewards for 2 queries", id="short"),
        pytest.param(b'{"rewards": [7.0, 3.0, 1.0]}', "3 rewards for 2 queries", id="long"),
        pytest.param(b'{"rewards": ["7", 3.0]}', "rewards.0: Input should be", id="text"),
        pytest.param(b'{"rewards": [7.0, null]}', "rewards.1: Input should be", id="null-item"),
        pytest.param(b'{"rewards": [true, 3.0]}', "rewards.0: Input should be", id="bool"),
        pytest.param(
            b'{"rewards": [7.0, 3.0], "extra_logs": {"icrm_failed": [0.0]}}',
            "1 extra_logs.icrm_failed for 2 queries",
            id="short-failed",
        ),
    ],
)
def test_a_malformed_200_is_one_engine_error(body, problem):
    def handle(conn: socket.socket) -> None:
        conn.sendall(answer("200 OK", body))

    with http_server(handle) as url, pytest.raises(EngineError) as info:
        ICRMReward(endpoint=url, timeout=10)(["q", "r"], ["a", "b"])
    message = str(info.value)
    assert message.startswith(f"reward endpoint {url}/get_reward: not a /get_reward answer: ")
    assert problem in message and "\n" not in message


def rewards_handler(conn: socket.socket) -> None:
    conn.sendall(answer("200 OK", json.dumps({"rewards": [7.0]}).encode()))


def test_a_connection_made_past_the_deadline_ends_the_call(monkeypatch):
    """The watchdog has no socket to shut while the connection is being made: connecting
    has the time left as its timeout, and the deadline is checked once it is made (it
    went on to read a trickling answer with the whole budget per read)."""
    stop = threading.Event()
    real = socket.create_connection

    def slow(*args, **kwargs):
        time.sleep(2.5)  # past the deadline, as a slow resolver or connect would be
        return real(*args, **kwargs)

    body = trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", stop)
    with http_server(body) as url:
        reward = ICRMReward(endpoint=url, timeout=2)
        monkeypatch.setattr(socket, "create_connection", slow)
        ender = threading.Timer(10, stop.set)
        ender.start()
        started = time.monotonic()
        with pytest.raises(EngineError, match=r"no answer within 2 s"):
            reward(["q"], ["a"])
        took = time.monotonic() - started
        stop.set()
        ender.cancel()
    assert took < 5, took


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(f"Content-Length: {2**20 + 10}", id="long"),
        pytest.param("Content-Length: 99999999999", id="declared"),
        pytest.param("", id="to-the-end"),
    ],
)
def test_an_answer_past_the_size_bound_is_one_error(monkeypatch, head):
    """An answer is read up to ``MAX_ANSWER_BYTES``, not into all the memory there is."""
    monkeypatch.setattr(endpoint, "MAX_ANSWER_BYTES", 2**20)
    body = b" " * (2**20 + 10) if "99999" not in head else b""

    def handle(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nConnection: close\r\n{head}\r\n\r\n".encode())
        conn.sendall(body)

    with http_server(handle) as url, pytest.raises(EngineError) as info:
        ICRMReward(endpoint=url, timeout=10)(["q"], ["a"])
    assert str(info.value) == (
        f"reward endpoint {url}/get_reward: not a /get_reward answer: an answer over 1 MiB"
    )


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory) -> tuple[Path, ssl.SSLContext]:
    """A certificate authority of the test's own (its certificate's file) and a server
    context with a certificate it signed for 127.0.0.1."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def signed(common_name: str, public_key, *extensions) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "icrm test CA")]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(ca_key, hashes.SHA256())

    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    ca = signed(
        "icrm test CA",
        ca_key.public_key(),
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            True,
        ),
    )
    leaf = signed(
        "127.0.0.1",
        key.public_key(),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    )
    folder = tmp_path_factory.mktemp("tls")
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(leaf.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", context


def test_an_untrusted_certificate_is_one_error_at_once(private_ca):
    """Retrying cannot make a certificate trusted: one line that says why, not a retried
    "cannot reach the server (SSLCertVerificationError)" until the deadline."""
    _, tls = private_ca
    with http_server(rewards_handler, tls) as url, pytest.raises(EngineError) as info:
        started = time.monotonic()
        ICRMReward(endpoint=url, timeout=20)(["q"], ["a"])
    message = str(info.value)
    assert message.startswith(f"reward endpoint {url}/get_reward: TLS certificate not accepted (")
    assert message.endswith(
        "; a private CA's certificate goes in REQUESTS_CA_BUNDLE or SSL_CERT_FILE"
    )
    assert "\n" not in message and "gave up" not in message
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_private_ca_from_the_environment_is_trusted(private_ca, monkeypatch, variable):
    """As ``requests`` trusts it (``REQUESTS_CA_BUNDLE``), and as OpenSSL does."""
    ca, tls = private_ca
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(ca))
    with http_server(rewards_handler, tls) as url:
        assert ICRMReward(endpoint=url, timeout=10)(["q"], ["a"]) == [7.0]


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextmanager
def proxy_server(seen: list[str]) -> Iterator[str]:
    """An HTTP proxy on 127.0.0.1 that notes each request's head: it answers a forwarded
    request itself (the rewards ``[7.0]``) and relays a ``CONNECT`` tunnel; yields its URL."""

    def handle(conn: socket.socket) -> None:
        head = _read_request(conn).decode()
        seen.append(head)
        method, target, _ = head.split(" ", 2)
        if method != "CONNECT":
            rewards_handler(conn)
            return
        host, _, port = target.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
            back.start()
            _pipe(conn, upstream)
            back.join(10)

    class Proxy(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with contextlib.suppress(OSError):
                handle(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_proxy_from_the_environment_gets_the_whole_url(monkeypatch):
    """As ``requests`` sends it: the absolute URL to the proxy, with its credentials."""
    seen: list[str] = []
    with proxy_server(seen) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.replace("http://", "http://me:pw@"))
        reward = ICRMReward(endpoint="http://127.0.0.1:9", timeout=10)  # only the proxy answers
        assert reward(["q"], ["a"]) == [7.0]
    assert seen[0].startswith("POST http://127.0.0.1:9/get_reward HTTP/1.1\r\n")
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'me:pw').decode()}" in seen[0]


def test_no_proxy_exempts_its_hosts(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    with http_server(rewards_handler) as url:
        assert ICRMReward(endpoint=url, timeout=10)(["q"], ["a"]) == [7.0]


def test_https_goes_through_a_proxy_tunnel(private_ca, monkeypatch):
    ca, tls = private_ca
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    seen: list[str] = []
    with http_server(rewards_handler, tls) as url, proxy_server(seen) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        assert ICRMReward(endpoint=url, timeout=10)(["q"], ["a"]) == [7.0]
    assert seen[0].startswith(f"CONNECT {url.removeprefix('https://')} HTTP/")


def test_a_proxy_of_another_kind_is_one_line(monkeypatch):
    """Not followed, and not silently bypassed: said before the first request."""
    monkeypatch.setenv("HTTP_PROXY", "socks5://me:pw@127.0.0.1:1080")
    with pytest.raises(InputError) as info:
        ICRMReward(endpoint="http://127.0.0.1:9")
    assert str(info.value) == (
        "reward endpoint http://127.0.0.1:9/get_reward: the proxy 'socks5://127.0.0.1:1080' "
        "from the environment is not an http://HOST:PORT proxy (the only kind supported); "
        "fix it, or add the host to NO_PROXY"
    )


def test_a_ca_bundle_that_cannot_be_read_is_one_line_before_any_request(monkeypatch, tmp_path):
    missing = tmp_path / "missing.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(missing))
    with pytest.raises(InputError) as info:
        ICRMReward(endpoint="https://127.0.0.1:9")
    assert str(info.value) == (
        f"REQUESTS_CA_BUNDLE={missing}: cannot read CA certificates (No such file or directory)"
    )
