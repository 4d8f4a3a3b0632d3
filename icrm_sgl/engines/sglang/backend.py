"""The sglang backend: icrm-sgl's programs over a server's native ``/generate``
(server-side constrained decoding, RadixAttention prefix sharing)."""

from __future__ import annotations

import threading
import weakref
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import requests
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
from icrm_sgl.engines.retry import RetryPolicy, retry_after_seconds
from icrm_sgl.engines.server_process import (
    ServerGroup,
    ServerProcess,
)
from icrm_sgl.engines.sglang.client import (
    BUSY_STATUSES,
    auth_headers,
)
from icrm_sgl.engines.sglang.frontend import program_run_id, program_text
from icrm_sgl.engines.sglang.options import SglangOptions
from icrm_sgl.engines.sglang.router import (
    ROUTING_KEY_HEADER,
    healthy_worker_urls,
    router_workers,
)
from icrm_sgl.errors import EngineError


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
        headers = auth_headers(self.options.api_key)
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
                    self.base_url, auth_headers(self.options.api_key), self.options.request_timeout
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
