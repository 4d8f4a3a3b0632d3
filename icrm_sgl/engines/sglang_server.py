"""The sglang runtime engine: connect to an sglang server or router, or launch them.

Programs run over the server's native ``/generate`` (server-side constrained decoding,
RadixAttention prefix sharing). When no endpoint is given, ``sglang.launch_server`` is
started on a free local port with ``num_gpu_per_worker`` tensor-parallel GPUs; with
``num_workers`` > 1, that many servers behind sglang's router (``routing=router``) or one
server with ``--dp-size`` (``routing=dp``). Everything launched stops with its process
group.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
import threading
import time
import weakref
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ClassVar, Literal

import requests
from pydantic import ConfigDict, Field, field_validator, model_validator
from sglang.lang.backend.base_backend import BaseBackend
from sglang.lang.chat_template import (
    ChatTemplate,
    get_chat_template,
    get_chat_template_by_model_path,
)
from sglang.lang.choices import ChoicesDecision, ChoicesSamplingMethod
from sglang.lang.interpreter import StreamExecutor
from sglang.lang.ir import SglSamplingParams

from icrm_sgl.engines.capabilities import PROGRAM_ENGINE, Capabilities
from icrm_sgl.engines.chat_templates import local_chat_template, template_name_in
from icrm_sgl.engines.protocol import EngineOptions
from icrm_sgl.engines.retry import RetryPolicy, retry_after_seconds
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
from icrm_sgl.engines.sglang_frontend import program_run_id, program_text
from icrm_sgl.engines.sglang_router import (
    ROUTING_KEY_HEADER,
    Policy,
    healthy_worker_urls,
    router_workers,
    spawn_router,
    wait_for_workers,
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
    "device",
    "server_env",
    "dtype",
    "quantization",
    "routing",
    "router_policy",
    "router_sticky",
    "router_args",
)


#: Answers that mean "busy, ask again": rate limited, no worker ready behind a router
#: (smg's 503 with its circuit breaker open), a gateway without an answer.
BUSY_STATUSES = frozenset({429, 502, 503, 504})


class SglangOptions(EngineOptions):
    """Settings of the sglang engine: an endpoint to connect to, or how to launch a server."""

    model_config = ConfigDict(extra="forbid")
    run_only: ClassVar[frozenset[str]] = frozenset(
        {
            "api_key",
            "batch_threads",
            "busy_timeout",
            "generate_timeout",
            "launch_timeout",
            "log_path",
            "max_attempts",
            "python",
            "request_timeout",
            "server_env",
        }
    )

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
    generate_timeout: float = Field(300.0, gt=0, description="seconds for one /generate request")
    busy_timeout: float = Field(
        120.0, gt=0, description="seconds to keep retrying while the server or router is busy"
    )
    max_attempts: int | None = Field(
        None, ge=1, description="tries per request while busy (default: busy_timeout bounds)"
    )
    layout: Literal["per_field", "one_request"] = Field(
        "one_request", description="text fields in one request, or one request per field"
    )
    seed: int | None = 42
    python: str = Field(default_factory=lambda: sys.executable, description="server's python")
    device: Literal["cuda", "cpu"] = Field("cuda", description="where a launched server runs")
    dtype: str | None = Field(None, description="--dtype of a launched server")
    quantization: str | None = Field(None, description="--quantization of a launched server")
    server_env: dict[str, str] = Field(
        default_factory=dict, description="extra environment for a launched server"
    )
    routing: Literal["router", "dp"] = Field(
        "router", description="num_workers > 1: servers behind sglang's router, or --dp-size"
    )
    router_policy: Policy = Field(
        "consistent_hashing", description="router's --policy (the routing key picks a worker)"
    )
    router_sticky: bool = Field(True, description="keep a verdict's requests on one worker")
    router_args: list[str] = Field(default_factory=list, description="extra router flags")

    @field_validator("server_args", "router_args", mode="before")
    @classmethod
    def _split_args(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("server_env", mode="before")
    @classmethod
    def _parse_env(cls, value: Any) -> Any:
        """``KEY=VALUE,KEY=VALUE`` text (as ``-E server_env=...`` gives it) as a mapping."""
        if not isinstance(value, str):
            return value
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep or not key.strip() for key, sep, _ in pairs):
            raise ValueError(f"expected KEY=VALUE,KEY=VALUE, got {value!r}")
        return {key.strip(): val for key, _, val in pairs}

    @field_validator("endpoint")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, got {value!r}")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _check_mode(self) -> SglangOptions:
        if self.endpoint is None and not self.model_name:
            raise ValueError(
                "give a model to launch a server (--model), or the URL of a running one "
                "(--endpoint)"
            )
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


# -- launching a server --------------------------------------------------------------------


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


# -- the backend ---------------------------------------------------------------------------


class SglangBackend(BaseBackend):
    """Runs icrm-sgl's programs on an sglang server or router over its native ``/generate``.

    Unlike sglang's ``RuntimeEndpoint`` it puts a timeout on every request, scores
    ``select`` choices with single-text requests (which routers accept), treats the
    server's missing first log-probability as part of the shared prefix, pins every request
    of one program run to one data-parallel worker, and owns a server it launched.
    """

    capabilities = Capabilities(
        modes=("completion", "chat"), constraint="server-side grammar (xgrammar)", **PROGRAM_ENGINE
    )

    def __init__(
        self,
        base_url: str,
        model_info: dict,
        options: SglangOptions,
        server: ServerProcess | ServerGroup | None = None,
        dp_size: int = 1,
        workers: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.base_url = base_url
        self.model_info = model_info
        self.options = options
        self.server = server
        self.dp_size = dp_size
        self.workers = workers
        self.batch_threads = options.batch_threads
        self.chat_template, self.chat_template_known = resolve_chat_template(
            options.chat_template, model_info.get("model_path", "")
        )
        self._local = threading.local()
        # A router with no worker ready, or a server shedding load, answers busy: retried
        # for as long as a router takes to readmit a worker, within one request's budget.
        budget = min(options.busy_timeout, options.generate_timeout)
        self._retry = RetryPolicy(options.max_attempts, budget=budget)
        self._scoring = ThreadPoolExecutor(max_workers=16, thread_name_prefix="icrm-select")
        self._seen_tokens: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._seen_lock = threading.Lock()

    @property
    def program_layout(self) -> str:
        """How the judging programs write the text fields (``options.layout``)."""
        return self.options.layout

    # -- requests --------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _rank(self, s: StreamExecutor) -> int:
        """The data-parallel worker every request of this program run goes to."""
        return zlib.crc32(program_run_id(s).encode()) % self.dp_size

    def _post(
        self,
        payload: dict[str, Any],
        s: StreamExecutor | None = None,
        path: str = "/generate",
        base_url: str | None = None,
    ) -> Any:
        headers = _headers(self.options.api_key)
        if s is not None and self.dp_size > 1:
            payload["routed_dp_rank"] = self._rank(s)
        if s is not None and self.workers is not None:
            headers[ROUTING_KEY_HEADER] = program_run_id(s)
        url = (base_url or self.base_url) + path
        request = partial(self._post_once, url, payload, headers)
        return self._retry.call(request)[0] if path == "/generate" else request()

    def _post_once(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> Any:
        """One POST; a busy answer (429, 502-504, a refused connection) as a retryable
        ``EngineError`` carrying the server's ``Retry-After``."""
        timeout = self.options.generate_timeout
        try:
            res = self._session().post(
                url,
                json=payload,
                headers=headers,
                timeout=(self.options.request_timeout, timeout),
            )
        except requests.Timeout as exc:  # the whole budget is spent: not retried
            raise EngineError(
                f"sglang server {self.base_url}: no answer within {timeout:g} s "
                "(raise it with -E generate_timeout=SECONDS)"
            ) from exc
        except requests.RequestException as exc:
            raise EngineError(
                f"sglang server {self.base_url}: request failed ({type(exc).__name__})",
                retryable=isinstance(exc, requests.ConnectionError),
            ) from exc
        if res.status_code != 200:
            try:
                detail = res.json()
            except ValueError:
                detail = res.text
            busy = res.status_code in BUSY_STATUSES
            raise EngineError(
                f"sglang server {self.base_url}: HTTP {res.status_code}: {detail}",
                retryable=busy,
                retry_after=retry_after_seconds(res.headers.get("Retry-After")) if busy else None,
            )
        return res.json() if url.endswith("/generate") else res.text

    def _remember(self, s: StreamExecutor, meta: dict) -> None:
        with self._seen_lock:
            self._seen_tokens[s] = meta.get("prompt_tokens", 0) + meta.get("completion_tokens", 0)

    def _recall(self, s: StreamExecutor) -> int | None:
        with self._seen_lock:
            return self._seen_tokens.pop(s, None)

    # -- the BaseBackend interface ----------------------------------------------------------

    def get_model_name(self) -> str:
        return self.model_info.get("model_path") or self.options.model_name or "sglang"

    def get_chat_template(self):
        return self.chat_template

    def cache_prefix(self, prefix_str: str) -> None:
        """Prefill the shared prompt prefix once on every worker: each data-parallel rank,
        or each server a router lists healthy now (directly, else once through the router;
        a stopped worker would hold a direct request, and with none healthy each request
        carries its full text anyway)."""
        payload: dict[str, Any] = {"text": prefix_str, "sampling_params": {"max_new_tokens": 0}}
        if self.workers:
            live = healthy_worker_urls(
                router_workers(
                    self.base_url, _headers(self.options.api_key), self.options.request_timeout
                )
            )
            if not live:
                return
            try:
                list(self._scoring.map(lambda url: self._post(dict(payload), base_url=url), live))
                return
            except EngineError:
                pass  # workers not reachable from here: the router places the prefix
        payloads = [payload]
        if self.dp_size > 1:
            payloads = [{**payload, "routed_dp_rank": r} for r in range(self.dp_size)]
        list(self._scoring.map(self._post, payloads))

    def commit_lazy_operations(self, s: StreamExecutor) -> None:
        if program_text(s):  # a fork of an empty state has nothing to prefill
            self._post({"text": program_text(s), "sampling_params": {"max_new_tokens": 0}}, s)

    def flush_cache(self) -> None:
        """Empty the server's prefix cache (for measurements)."""
        self._post({}, path="/flush_cache")

    def generate(self, s: StreamExecutor, sampling_params: SglSamplingParams):
        payload: dict[str, Any] = {
            "text": program_text(s),
            "sampling_params": {"skip_special_tokens": True, **sampling_params.to_srt_kwargs()},
        }
        for item in ("return_logprob", "logprob_start_len", "top_logprobs_num"):
            value = getattr(sampling_params, item, None)
            if value is not None:
                payload[item] = value
        obj = self._post(payload, s)
        meta = obj["meta_info"]
        self._remember(s, meta)
        return obj["text"], meta

    def select(
        self,
        s: StreamExecutor,
        choices: list[str],
        temperature: float,
        choices_method: ChoicesSamplingMethod,
    ) -> ChoicesDecision:
        """Score every choice by its log-probability after the text so far.

        One single-text request per choice, in parallel (routers take one text per
        request). The scored window starts two tokens before the choices so that a choice
        merging with the text's last token is scored whole; the shared tokens in it add
        the same amount to every choice.
        """
        if choices_method.requires_unconditional_logprobs:
            raise EngineError("sglang engine: unconditional log-probabilities are not supported")
        seen = self._recall(s)
        if seen is None:
            probe = {"text": program_text(s), "sampling_params": {"max_new_tokens": 0}}
            seen = self._post(probe, s)["meta_info"]["prompt_tokens"]
        start = max(seen - 2, 0)

        def score(choice: str) -> list[list[Any]]:
            payload = {
                "text": program_text(s) + choice,
                "sampling_params": {"max_new_tokens": 0, "temperature": 0},
                "return_logprob": True,
                "return_text_in_logprobs": True,
                "logprob_start_len": start,
            }
            return self._post(payload, s)["meta_info"]["input_token_logprobs"]

        windows = list(self._scoring.map(score, choices))
        normalized = [sum(t[0] or 0.0 for t in w) / max(len(w), 1) for w in windows]
        return choices_method(
            choices=choices,
            normalized_prompt_logprobs=normalized,
            input_token_logprobs=windows,
            output_token_logprobs=[[] for _ in choices],
        )

    def shutdown(self) -> None:
        """Stop the server this backend launched (a connected server is left running)."""
        self._scoring.shutdown(wait=False, cancel_futures=True)
        if self.server is not None:
            self.server.stop()
            self.server = None


def resolve_chat_template(name: str | None, model_path: str) -> tuple[ChatTemplate, bool]:
    """The chat template for a served model, and whether it is known to be the model's own.

    An explicit name wins; then sglang's match on the model path; then the template in a
    local checkpoint directory's tokenizer files. Otherwise sglang's generic fallback, which
    chat mode refuses (``chat_template_known`` is False).
    """
    if name:
        return get_chat_template(name), True
    by_path = get_chat_template_by_model_path(model_path)
    if by_path.name != "default":
        return by_path, True
    found = template_name_in(local_chat_template(model_path))
    if found:
        return get_chat_template(found), True
    return by_path, False


def server_dp_size(base_url: str, api_key: str | None, timeout: float) -> int:
    """The server's data-parallel size (1 for a router, which has no ``/server_info``)."""
    for path in ("/server_info", "/get_server_info"):
        res = _get(base_url + path, api_key, timeout)
        if res.status_code == 200:
            return int(res.json().get("dp_size") or 1)
    return 1


def connect(
    base_url: str, options: SglangOptions, server: ServerProcess | ServerGroup | None = None
) -> SglangBackend:
    """A backend for a healthy server or router that serves ``options.model_name``."""
    listed = router_workers(base_url, _headers(options.api_key), options.request_timeout)
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
        headers=_headers(options.api_key),
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
    headers = _headers(options.api_key)
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
