"""The hosted-engine base class: one abstract call, capability flags, shared retries
(the validate-and-re-ask loop is ``reask``; the busy-retry policy ``engines.retry``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import AliasChoices, ConfigDict, Field, SecretStr

from icrm_sgl.engines.capabilities import Capabilities
from icrm_sgl.engines.hosted.fields import FieldRequest
from icrm_sgl.engines.hosted.preflight import missing_key
from icrm_sgl.engines.hosted.reask import Message, Reply, obtain_verdict
from icrm_sgl.engines.protocol import EngineOptions
from icrm_sgl.engines.retry import RetryPolicy, retry_after_seconds
from icrm_sgl.errors import EngineError

if TYPE_CHECKING:
    from icrm_sgl.judges import Judge


class HostedOptions(EngineOptions):
    """Settings shared by every hosted engine."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    run_only: ClassVar[frozenset[str]] = frozenset(
        {"api_key", "backoff_base", "backoff_cap", "max_attempts", "timeout"}
    )

    model_name: str | None = None
    base_url: str | None = Field(None, validation_alias=AliasChoices("base_url", "endpoint"))
    api_key: SecretStr | None = None
    seed: int | None = None
    timeout: float = Field(300.0, gt=0, description="seconds per HTTP request")
    max_tokens: int = Field(
        512, ge=1, description="text fields' budget (split evenly) when the call sets none"
    )
    max_retries: int = Field(3, ge=0, description="re-asks after an invalid verdict")
    max_attempts: int = Field(5, ge=1, description="tries per request on transient errors")
    backoff_base: float = Field(0.5, ge=0)
    backoff_cap: float = Field(8.0, ge=0)


class HostedEngine:
    """A model behind an HTTP API; subclasses implement ``send`` and set the flags."""

    #: Examples in flight at once in a batch, unless the caller says otherwise.
    batch_threads: ClassVar[int] = 8
    #: The API constrains output to a JSON schema (else it is only validated).
    supports_schema: ClassVar[bool] = True
    #: The engine's name in meta and messages (an OpenAI-compatible engine: its preset's).
    engine_name: str = "hosted"
    #: Declared by each engine (or its provider preset).
    capabilities: Capabilities
    #: The provider applies the model's own chat template.
    chat_template_known: ClassVar[bool] = True
    #: One request per whole verdict; the per-field layout of programs does not apply.
    program_layout: ClassVar[str] = "per_field"

    def __init__(self, options: HostedOptions, model_name: str) -> None:
        self.options = options
        self.model_name = model_name
        # Busy answers are retried within one request's timeout.
        self.backoff = RetryPolicy(
            options.max_attempts, options.backoff_base, options.backoff_cap, options.timeout
        )

    @property
    def where(self) -> str:
        return f"{self.engine_name} engine ({self.options.base_url or 'default endpoint'})"

    def get_model_name(self) -> str:
        return self.model_name

    def shutdown(self) -> None:
        """Release connections; nothing by default."""

    def send(
        self, messages: list[Message], wanted: FieldRequest, completion: bool, gen: dict[str, Any]
    ) -> Reply:
        """One API call for the conversation so far, asking for the fields ``wanted`` within
        ``gen["max_tokens"]``; raises ``EngineError``."""
        raise NotImplementedError

    def judge(
        self, prompt: str, judge: Judge, completion: bool, gen: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A validated public verdict and its meta, or ``VerdictError`` / ``EngineError``.

        ``gen["max_tokens"]`` is the budget of the verdict's text fields, split evenly as
        the programs split it; each request's own budget is derived from the fields it
        asks for (``FieldRequest.max_tokens``), so the JSON always has room to close.
        """
        n_text = max(1, len(FieldRequest.whole(judge).text_keys))
        field_tokens = max(1, (gen.get("max_tokens") or self.options.max_tokens) // n_text)
        last: list[tuple[list[Message], Reply]] = []

        def send(messages: list[Message], wanted: FieldRequest) -> Reply:
            reply = self.send(
                messages, wanted, completion, {**gen, "max_tokens": wanted.max_tokens}
            )
            last[:] = [(messages, reply)]
            return reply

        verdict, meta = obtain_verdict(
            send,
            prompt,
            FieldRequest.whole(judge, field_tokens),
            self.options.max_retries,
            self.backoff,
        )
        meta.update(self.probability_meta(*last[0], judge, completion))
        return verdict, {"engine": self.engine_name, "model": self.model_name, **meta}

    def probability_meta(
        self, messages: list[Message], reply: Reply, judge: Judge, completion: bool
    ) -> dict[str, Any]:
        """The score / choice distribution of the accepted reply, or why there is none."""
        return {"probabilities_unavailable": f"{self.engine_name} gives no log-probabilities"}


def resolve_key(options: HostedOptions, env_var: str, required: bool, where: str) -> str | None:
    """The API key from the options or the environment; an ``InputError`` if one is needed."""
    if options.api_key is not None:
        return options.api_key.get_secret_value()
    key = os.environ.get(env_var)
    if not key and required:
        raise missing_key(where, env_var)
    return key or None


def status_error(
    status: int, detail: str, where: str, key: str | None, retry_after: str | None = None
) -> EngineError:
    """An HTTP error as an ``EngineError``: 429 / 5xx retryable (after the server's
    ``Retry-After`` when it sent one), auth without server text."""
    if status in (401, 403):
        return EngineError(f"{where}: authentication failed (HTTP {status}); check the API key")
    if key:
        detail = detail.replace(key, "***")
    retryable = status == 429 or status >= 500
    return EngineError(
        f"{where}: HTTP {status}: {detail[:300]}",
        retryable=retryable,
        retry_after=retry_after_seconds(retry_after) if retryable else None,
    )


def sdk_status_error(exc: Any, where: str, key: str | None) -> EngineError:
    """An SDK's HTTP status error (``openai`` and ``anthropic`` share its shape) as an
    ``EngineError``, with the server's ``Retry-After``."""
    retry_after = exc.response.headers.get("retry-after")
    return status_error(exc.status_code, str(exc.message), where, key, retry_after)


def connection_error(exc: Exception, where: str) -> EngineError:
    """A timeout or a failed connection: retryable."""
    if "Timeout" in type(exc).__name__:
        return EngineError(
            f"{where}: request timed out (a busy server? raise -E timeout=SECONDS "
            "or lower --concurrency)",
            retryable=True,
        )
    return EngineError(f"{where}: cannot reach the server ({type(exc).__name__})", retryable=True)
