"""The lifecycle of a model server that an engine launches itself (sglang, vLLM, a router).

One free local port, the process in its own process group with its log in a file, a
bounded health wait that fails fast with the log's tail, and shutdown of the whole group
on close, at interpreter exit, on errors and on Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from icrm_sgl.engines.retry import poll_until
from icrm_sgl.errors import EngineError

HOST = "127.0.0.1"


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


def check_gpus(engine: str, num_workers: int, num_gpu_per_worker: int) -> None:
    """Refuse to launch when fewer GPUs are visible than the workers need."""
    need, have = num_workers * num_gpu_per_worker, count_gpus()
    if have < need:
        raise EngineError(
            f"{engine} engine: {need} GPU(s) needed (num_workers={num_workers} x "
            f"num_gpu_per_worker={num_gpu_per_worker}) but {have} visible "
            "(CUDA_VISIBLE_DEVICES / nvidia-smi -L); pass endpoint=URL to use a running server"
        )


def start_process(
    cmd: list[str], log_path: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, stdout and stderr appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
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
    url: str,
    proc: subprocess.Popen,
    timeout: float,
    log_path: str,
    headers: dict[str, str] | None = None,
    name: str = "server",
    interval: float = 1.0,
) -> None:
    """Poll ``url`` until it answers 200; fail fast if the process exits.

    Polls start 0.1 s apart and back off to ``interval``.
    """

    def healthy(left: float) -> bool:
        code = proc.poll()
        if code is not None:
            raise _failure(f"{name} exited with code {code} before it was ready", log_path)
        try:
            res = requests.get(url, headers=headers, timeout=min(10, max(left, 0.1)))
            return res.status_code == 200
        except requests.RequestException:
            return False  # not listening yet

    def timed_out(_: bool) -> EngineError:
        return _failure(f"{name} not healthy after {timeout:g} s", log_path)

    poll_until(healthy, bool, timeout, timed_out, interval=interval)


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
    """A server an engine started: its process (group leader), URL and log."""

    proc: subprocess.Popen
    url: str
    log_path: str

    def wait_ready(
        self,
        timeout: float,
        health_path: str = "/health",
        headers: dict[str, str] | None = None,
        name: str = "server",
    ) -> None:
        """Wait until ``health_path`` answers 200; stop the server if it never does (or on
        Ctrl-C during the wait)."""
        try:
            wait_healthy(self.url + health_path, self.proc, timeout, self.log_path, headers, name)
        except BaseException:
            self.stop()
            raise

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server and its children; safe to call more than once."""
        atexit.unregister(self.stop)
        stop_process_group(self.proc, grace)


@dataclass
class ServerGroup:
    """Servers that live and stop together: a router first, then the workers behind it."""

    members: list[ServerProcess]

    @property
    def url(self) -> str:
        return self.members[0].url

    @property
    def proc(self) -> subprocess.Popen:
        return self.members[0].proc

    @property
    def log_path(self) -> str:
        return self.members[0].log_path

    def stop(self, grace: float = 10.0) -> None:
        """Stop every member at once (each waits up to ``grace`` seconds for its group)."""
        with ThreadPoolExecutor(max_workers=len(self.members)) as pool:
            list(pool.map(lambda member: member.stop(grace), self.members))


def default_log_path(prefix: str = "icrm-server-") -> str:
    """A new temporary file for a server's log."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".log")
    os.close(fd)
    return path


def spawn(
    cmd: list[str], port: int, log_path: str | None = None, env: dict[str, str] | None = None
) -> ServerProcess:
    """Start a server command that will listen on ``port``, without waiting for it; it is
    stopped at interpreter exit if nobody stops it first."""
    log_path = log_path or default_log_path()
    server = ServerProcess(start_process(cmd, log_path, env), f"http://{HOST}:{port}", log_path)
    atexit.register(server.stop)
    return server


def serve(
    cmd: list[str],
    port: int,
    timeout: float,
    log_path: str | None = None,
    *,
    health_path: str = "/health",
    headers: dict[str, str] | None = None,
    name: str = "server",
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start a server command listening on ``port`` and wait until ``health_path`` is 200.

    It is stopped again on any failure or interrupt (Ctrl-C) during the wait, and at
    interpreter exit if nobody stops it first.
    """
    server = spawn(cmd, port, log_path, env)
    server.wait_ready(timeout, health_path, headers, name)
    return server
