"""The sglang runtime engine: connect to an sglang server or router, or launch one.

Programs run through sglang's own ``RuntimeEndpoint`` (server-side constrained decoding,
RadixAttention prefix sharing). When no endpoint is given, ``sglang.launch_server`` is
started on a free local port with ``num_workers`` data-parallel replicas of
``num_gpu_per_worker`` tensor-parallel GPUs each, and stopped with its whole process group.
"""

from __future__ import annotations

import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sglang.lang.backend.runtime_endpoint import RuntimeEndpoint
from sglang.lang.chat_template import get_chat_template, get_chat_template_by_model_path

from icrm_sgl.engines.server_process import (
    HOST,
    ServerProcess,
    check_gpus,
    default_log_path,
    free_port,
    serve,
)
from icrm_sgl.errors import EngineError

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
    check_gpus("sglang", options.num_workers, options.num_gpu_per_worker)
    port = free_port()
    cmd = launch_command(options.model_name, options, port)
    server = serve(
        cmd,
        port,
        options.launch_timeout,
        options.log_path or default_log_path("icrm-sglang-"),
        health_path="/health_generate",
        headers=_headers(options.api_key),
        name="sglang server",
    )
    try:
        return connect(server.url, options, server, warm_copies=options.num_workers)
    except BaseException:
        server.stop()
        raise


def create(model_name: str | None = None, **options: Any) -> SglangBackend:
    """Registry factory: connect to ``endpoint`` if given, else launch a server."""
    opts = SglangOptions(model_name=model_name, **options)
    return connect(opts.endpoint, opts) if opts.endpoint else launch(opts)
