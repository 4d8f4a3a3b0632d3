"""The sglang runtime engine: connect to an sglang server or router, or launch one.

Programs run through sglang's own ``RuntimeEndpoint`` (server-side constrained decoding,
RadixAttention prefix sharing). When no endpoint is given, ``sglang.launch_server`` is
started on a free local port with ``num_workers`` data-parallel replicas of
``num_gpu_per_worker`` tensor-parallel GPUs each, and stopped with its whole process group.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sglang.lang.backend.runtime_endpoint import RuntimeEndpoint
from sglang.lang.chat_template import get_chat_template, get_chat_template_by_model_path

from icrm_sgl.errors import EngineError

HOST = "127.0.0.1"
#: Options that only make sense when this engine launches the server itself.
_LAUNCH_ONLY = (
    "num_workers",
    "num_gpu_per_worker",
    "server_args",
    "launch_timeout",
    "log_path",
    "python",
)


class SglangOptions(BaseModel):
    """Settings of the sglang engine: an endpoint to connect to, or how to launch a server."""

    model_config = ConfigDict(extra="forbid")

    model_name: str | None = Field(None, description="HF name or path; checked when connecting")
    endpoint: str | None = Field(None, description="URL of an sglang server or router")
    num_workers: int = Field(1, ge=1, description="data-parallel replicas (--dp-size)")
    num_gpu_per_worker: int = Field(1, ge=1, description="tensor-parallel GPUs (--tp-size)")
    server_args: list[str] = Field(default_factory=list, description="extra launch_server flags")
    launch_timeout: float = Field(600.0, gt=0, description="seconds to wait for a healthy server")
    log_path: str | None = Field(None, description="server log file (default: a temp file)")
    api_key: str | None = None
    chat_template: str | None = Field(None, description="sglang template name override")
    batch_threads: int = Field(64, ge=1, description="run_batch threads (requests in flight)")
    request_timeout: float = Field(10.0, gt=0, description="seconds for health/model checks")
    seed: int | None = 42
    python: str = Field(default_factory=lambda: sys.executable, description="server's python")

    @field_validator("server_args", mode="before")
    @classmethod
    def _split_args(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("endpoint")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, got {value!r}")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _check_mode(self) -> SglangOptions:
        if self.endpoint is None and not self.model_name:
            raise ValueError("give a model to launch a server, or an endpoint to connect to")
        misplaced = sorted(self.model_fields_set & set(_LAUNCH_ONLY))
        if self.endpoint is not None and misplaced:
            raise ValueError(f"{', '.join(misplaced)} only apply when launching (no endpoint)")
        return self


# -- talking to a server -------------------------------------------------------------------


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _get(url: str, api_key: str | None, timeout: float) -> requests.Response:
    """GET with a short timeout; unreachable servers become one-line ``EngineError``s."""
    try:
        return requests.get(url, headers=_headers(api_key), timeout=timeout)
    except requests.Timeout:
        raise EngineError(f"sglang engine: no answer from {url} within {timeout:g} s") from None
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise EngineError(f"sglang engine: cannot reach {url} ({reason}); is it running?") from None


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
    served = [info.get(k) for k in ("model_path", "served_model_name") if info.get(k)]
    if not model_name or not served:
        return
    if any(_name_forms(model_name) & _name_forms(s) for s in served):
        return
    raise EngineError(f"sglang engine: {base_url} serves {served[0]!r}, not {model_name!r}")


# -- launching a server --------------------------------------------------------------------


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now (the OS picks it when binding port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def count_gpus() -> int:
    """Visible NVIDIA GPUs: CUDA_VISIBLE_DEVICES when set, else ``nvidia-smi -L``, else the
    driver's /proc entries (no torch import: it takes seconds)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [e for e in visible.split(",") if e.strip()]
        return 0 if entries[:1] == ["-1"] else len(entries)
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
            return sum(line.startswith("GPU ") for line in out.stdout.splitlines())
        except (OSError, subprocess.SubprocessError):
            return 0
    proc_dir = Path("/proc/driver/nvidia/gpus")
    return len(list(proc_dir.iterdir())) if proc_dir.is_dir() else 0


def check_gpus(num_workers: int, num_gpu_per_worker: int) -> None:
    """Refuse to launch when fewer GPUs are visible than the workers need."""
    need, have = num_workers * num_gpu_per_worker, count_gpus()
    if have < need:
        raise EngineError(
            f"sglang engine: {need} GPU(s) needed (num_workers={num_workers} x "
            f"num_gpu_per_worker={num_gpu_per_worker}) but {have} visible "
            "(CUDA_VISIBLE_DEVICES / nvidia-smi -L); pass endpoint=URL to use a running server"
        )


def launch_command(model_name: str, options: SglangOptions, port: int) -> list[str]:
    """The ``sglang.launch_server`` command line for these options."""
    cmd = [options.python, "-m", "sglang.launch_server", "--model-path", model_name]
    cmd += ["--tp-size", str(options.num_gpu_per_worker), "--dp-size", str(options.num_workers)]
    cmd += ["--host", HOST, "--port", str(port)]
    if options.seed is not None:
        cmd += ["--random-seed", str(options.seed)]
    if options.api_key:
        cmd += ["--api-key", options.api_key]
    return cmd + list(options.server_args)


def start_process(cmd: list[str], log_path: str) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, stdout and stderr appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def log_tail(log_path: str, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _failure(message: str, log_path: str) -> EngineError:
    tail = log_tail(log_path)
    return EngineError(f"{message}; log: {log_path}" + (f"\n{tail}" if tail else ""))


def wait_healthy(
    base_url: str,
    proc: subprocess.Popen,
    timeout: float,
    log_path: str,
    api_key: str | None = None,
    interval: float = 1.0,
) -> None:
    """Poll ``/health_generate`` until it answers 200; fail fast if the process exits.

    Polls start 0.1 s apart and back off to ``interval``.
    """
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        code = proc.poll()
        if code is not None:
            raise _failure(f"sglang server exited with code {code} before it was ready", log_path)
        left = deadline - time.monotonic()
        if left <= 0:
            raise _failure(f"sglang server not healthy after {timeout:g} s", log_path)
        try:
            res = requests.get(
                f"{base_url}/health_generate", headers=_headers(api_key), timeout=min(10, left)
            )
            if res.status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(2 * delay, interval)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)


def stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process's group, wait up to ``grace`` seconds for the leader, then
    SIGKILL the group: server children (schedulers, detokenizer) must not outlive the
    leader holding GPU memory."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)


@dataclass
class ServerProcess:
    """A server this engine started: its process (group leader), URL and log."""

    proc: subprocess.Popen
    url: str
    log_path: str

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server and its children; safe to call more than once."""
        atexit.unregister(self.stop)
        stop_process_group(self.proc, grace)


def _default_log_path() -> str:
    fd, path = tempfile.mkstemp(prefix="icrm-sglang-", suffix=".log")
    os.close(fd)
    return path


def serve(
    cmd: list[str],
    port: int,
    timeout: float,
    log_path: str | None = None,
    api_key: str | None = None,
) -> ServerProcess:
    """Start a server command listening on ``port`` and wait until it is healthy.

    It is stopped again on any failure or interrupt (Ctrl-C) during the wait, and at
    interpreter exit if nobody stops it first.
    """
    log_path = log_path or _default_log_path()
    server = ServerProcess(start_process(cmd, log_path), f"http://{HOST}:{port}", log_path)
    atexit.register(server.stop)
    try:
        wait_healthy(server.url, server.proc, timeout, log_path, api_key)
    except BaseException:
        server.stop()
        raise
    return server


# -- the backend ---------------------------------------------------------------------------


class SglangBackend(RuntimeEndpoint):
    """sglang's ``RuntimeEndpoint`` with checked startup, typed errors, per-worker prefix
    warm-up and ownership of a launched server."""

    def __init__(
        self,
        base_url: str,
        model_info: dict,
        options: SglangOptions,
        server: ServerProcess | None = None,
        warm_copies: int = 1,
    ) -> None:
        # RuntimeEndpoint.__init__ is not called: it re-fetches model info with no
        # timeout; its attributes are set here from the checked answer instead.
        super(RuntimeEndpoint, self).__init__()
        self.support_concate_and_append = True
        self.base_url = base_url
        self.api_key = options.api_key
        self.verify = None
        self.model_info = model_info
        self.options = options
        self.server = server
        self.warm_copies = warm_copies
        self.batch_threads = options.batch_threads
        self.chat_template = (
            get_chat_template(options.chat_template)
            if options.chat_template
            else get_chat_template_by_model_path(model_info.get("model_path", ""))
        )

    def cache_prefix(self, prefix_str: str) -> None:
        """Send the shared prompt prefix once per data-parallel worker, concurrently, so
        every worker's radix cache holds it before the batch starts."""
        if self.warm_copies == 1:
            super().cache_prefix(prefix_str)
            return
        with ThreadPoolExecutor(self.warm_copies) as pool:
            list(pool.map(super().cache_prefix, [prefix_str] * self.warm_copies))

    def _assert_success(self, res: Any) -> None:
        if res.status_code != 200:
            try:
                detail = res.json()
            except ValueError:
                detail = res.text
            raise EngineError(f"sglang server {self.base_url}: HTTP {res.status_code}: {detail}")

    def shutdown(self) -> None:
        """Stop the server this backend launched (a connected server is left running)."""
        if self.server is not None:
            self.server.stop()
            self.server = None


def connect(
    base_url: str,
    options: SglangOptions,
    server: ServerProcess | None = None,
    warm_copies: int = 1,
) -> SglangBackend:
    """A backend for a healthy server or router that serves ``options.model_name``."""
    info = fetch_model_info(base_url, options.api_key, options.request_timeout)
    check_model(options.model_name, info, base_url)
    return SglangBackend(base_url, info, options, server, warm_copies)


def launch(options: SglangOptions) -> SglangBackend:
    """Launch ``sglang.launch_server`` for ``options.model_name`` and connect to it."""
    check_gpus(options.num_workers, options.num_gpu_per_worker)
    port = free_port()
    cmd = launch_command(options.model_name, options, port)
    server = serve(cmd, port, options.launch_timeout, options.log_path, options.api_key)
    try:
        return connect(server.url, options, server, warm_copies=options.num_workers)
    except BaseException:
        server.stop()
        raise


def create(model_name: str | None = None, **options: Any) -> SglangBackend:
    """Registry factory: connect to ``endpoint`` if given, else launch a server."""
    opts = SglangOptions(model_name=model_name, **options)
    return connect(opts.endpoint, opts) if opts.endpoint else launch(opts)
