"""OpenAI-compatible APIs (OpenAI, Together, Mistral, vLLM, llama.cpp servers) via the
official ``openai`` client, with the verdict schema sent in the form each server reads."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

import openai

from icrm_sgl.engines.capabilities import OPENAI_SAMPLING, Capabilities
from icrm_sgl.engines.hosted.base import (
    HostedEngine,
    HostedOptions,
    Message,
    Reply,
    connection_error,
    resolve_key,
    sdk_status_error,
)
from icrm_sgl.engines.hosted.fields import FieldRequest
from icrm_sgl.engines.hosted.logprobs import (
    TOP_LOGPROBS,
    TokenLogprobs,
    Unavailable,
    chat_tokens,
    completion_tokens,
    probability_meta,
)
from icrm_sgl.errors import EngineError, InputError

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

    from icrm_sgl.judges import Judge

#: How a chat request asks for JSON, strictest first; a server that rejects one gets the next.
CHAT_FORMATS = ("json_schema", "json_object_schema", "json_object")

CompletionSchema = Literal["vllm", "vllm-legacy", "llama.cpp", "none"]


class OpenAIOptions(HostedOptions):
    """Settings of the OpenAI-compatible engines."""

    completion_schema: CompletionSchema | None = None
    logprobs: bool | None = None  # ask for token log-probabilities (default: the preset's)


@dataclass(frozen=True)
class Preset:
    """Defaults of one provider: endpoint, key variable, the schema fields its
    ``/v1/completions`` accepts, and how it spells sampling options."""

    name: str
    base_url: str | None
    key_env: str
    key_required: bool
    completion_schema: CompletionSchema
    #: The request field of the seed.
    seed_field: str = "seed"
    #: The server reads ``top_k`` (the OpenAI API itself has none).
    top_k: bool = False
    #: The API returns token log-probabilities when asked.
    logprobs: bool = False
    #: What the engine offers with this provider (declared with the provider's defaults).
    capabilities: Capabilities = field(kw_only=True)


#: Only vLLM's own fields go to a server by default: providers reject unknown fields, so
#: other servers get schema fields only when asked (``completion_schema``).
PRESETS = {
    "openai": Preset(
        "openai",
        None,
        "OPENAI_API_KEY",
        True,
        "none",
        logprobs=True,
        capabilities=Capabilities(
            sampling=OPENAI_SAMPLING,
            modes=("chat", "completion"),
            constraint="JSON-schema structured output, validated",
            probabilities=True,
            programs=False,
        ),
    ),
    "together": Preset(
        "together",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        True,
        "none",
        top_k=True,
        capabilities=Capabilities(
            sampling=OPENAI_SAMPLING | {"top_k"},
            modes=("chat", "completion"),
            constraint="JSON-schema structured output (chat), validated",
            probabilities=False,
            programs=False,
        ),
    ),
    "vllm": Preset(
        "vllm",
        "http://127.0.0.1:8000/v1",
        "VLLM_API_KEY",
        False,
        "vllm",
        top_k=True,
        logprobs=True,
        capabilities=Capabilities(
            sampling=OPENAI_SAMPLING | {"top_k"},
            modes=("completion", "chat"),
            constraint="structured outputs (server grammar), validated",
            probabilities=True,
            programs=False,
        ),
    ),
    "mistral": Preset(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        True,
        "none",
        "random_seed",
        capabilities=Capabilities(
            sampling=OPENAI_SAMPLING,
            modes=("chat",),
            constraint="JSON-schema structured output, validated",
            probabilities=False,
            programs=False,
        ),
    ),
}


def response_format(kind: str, wanted: FieldRequest) -> dict[str, Any]:
    """The chat ``response_format`` for one of ``CHAT_FORMATS``, for the fields ``wanted``."""
    if kind == "json_schema":
        name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{wanted.rm_type}_verdict")[:64]
        spec = {"name": name, "schema": wanted.json_schema(), "strict": True}
        return {"type": "json_schema", "json_schema": spec}
    if kind == "json_object_schema":  # llama.cpp servers constrain JSON mode to this schema
        return {"type": "json_object", "schema": wanted.grammar_schema()}
    return {"type": "json_object"}


def completion_fields(kind: CompletionSchema, wanted: FieldRequest) -> dict[str, Any]:
    """Request fields that make a server constrain ``/v1/completions`` to the schema."""
    schema = wanted.grammar_schema()
    if kind == "vllm":
        return {"structured_outputs": {"json": schema}}
    if kind == "vllm-legacy":
        return {"guided_json": schema}
    if kind == "llama.cpp":
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        return {"grammar": json_schema_to_gbnf(json.dumps(schema)), "json_schema": schema}
    return {}


def completion_text(messages: list[Message]) -> str:
    """The conversation as plain text: the prompt, then any invalid reply and its fix-up."""
    text = messages[0]["content"]
    for message in messages[1:]:
        text += (
            message["content"] if message["role"] == "assistant" else f"\n\n{message['content']}\n"
        )
    return text


class _FormatRejected(Exception):
    """The server refused a chat ``response_format``; the next one should be tried."""


def _rejects_format(exc: openai.APIStatusError) -> bool:
    # llama-cpp-python answers an unknown format with HTTP 500, others with 400 or 422.
    return exc.status_code in (400, 422, 500) and "response_format" in str(exc.message)


class OpenAICompatEngine(HostedEngine):
    """Chat: one call with JSON-schema structured output (else JSON mode). Completion:
    the schema as the server's own request fields."""

    def __init__(self, options: OpenAIOptions, preset: Preset) -> None:
        self.engine_name = preset.name
        self.preset = preset
        self.capabilities = preset.capabilities
        # A key is needed for the provider's own endpoint, not for a server of your own.
        own_server = options.base_url not in (None, preset.base_url)
        completion_schema = options.completion_schema or preset.completion_schema
        options = options.model_copy(
            update={
                "base_url": options.base_url or preset.base_url,
                "completion_schema": completion_schema,
            }
        )
        self._key = resolve_key(
            options, preset.key_env, preset.key_required and not own_server, f"{preset.name} engine"
        )
        self.client = openai.OpenAI(
            api_key=self._key or "none",
            base_url=options.base_url,
            timeout=options.timeout,
            max_retries=0,
        )
        self.completion_schema: CompletionSchema = completion_schema
        self.logprobs = preset.logprobs if options.logprobs is None else options.logprobs
        self._format = 0
        self._format_lock = threading.Lock()
        super().__init__(options, options.model_name or "")
        if not self.model_name:
            self.model_name = self._served_model()

    def _served_model(self) -> str:
        models = self._request(lambda: self.client.models.list().data)
        if not models:
            raise InputError(f"{self.where} serves no model; pass one with --model")
        return models[0].id

    def _request(self, call: Callable[[], Any], format_kind: int | None = None) -> Any:
        """Run one client call; its failures as ``EngineError`` (or ``_FormatRejected``
        when a chat server refuses ``CHAT_FORMATS[format_kind]`` and a laxer one is left)."""
        try:
            return call()
        except openai.APIStatusError as exc:
            laxer_left = format_kind is not None and format_kind + 1 < len(CHAT_FORMATS)
            if laxer_left and _rejects_format(exc):
                raise _FormatRejected from exc
            raise sdk_status_error(exc, self.where, self._key) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise connection_error(exc, self.where) from exc

    def _sampling(self, gen: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sampling keyword arguments of the client call, with ``extra_body`` for fields
        the OpenAI API lacks (ICRM refuses options an engine does not declare)."""
        params: dict[str, Any] = {
            k: gen[k] for k in ("temperature", "top_p", "max_tokens") if k in gen
        }
        for key in ("frequency_penalty", "presence_penalty"):
            if gen.get(key):
                params[key] = gen[key]
        extra = dict(extra or {})
        if self.preset.top_k and gen.get("top_k", -1) > 0:
            extra["top_k"] = gen["top_k"]
        if self.options.seed is not None:
            if self.preset.seed_field == "seed":
                params["seed"] = self.options.seed
            else:
                extra[self.preset.seed_field] = self.options.seed
        return {**params, "extra_body": extra} if extra else params

    def shutdown(self) -> None:
        """Close the HTTP client's connections."""
        self.client.close()

    def send(
        self, messages: list[Message], wanted: FieldRequest, completion: bool, gen: dict[str, Any]
    ) -> Reply:
        if completion:
            return self._complete(messages, wanted, gen)
        return self._chat(messages, wanted, gen)

    def _complete(
        self, messages: list[Message], wanted: FieldRequest, gen: dict[str, Any]
    ) -> Reply:
        logprobs: dict[str, Any] = {"logprobs": TOP_LOGPROBS} if self.logprobs else {}
        res = self._request(
            lambda: self.client.completions.create(
                model=self.model_name,
                prompt=completion_text(messages),
                **self._sampling(gen, completion_fields(self.completion_schema, wanted)),
                **logprobs,
            )
        )
        if not res.choices:
            return _reply("", res.usage)
        choice = res.choices[0]
        tokens = completion_tokens(choice.logprobs)
        return _reply(choice.text, res.usage, tokens, choice.finish_reason == "length")

    def _chat(self, messages: list[Message], wanted: FieldRequest, gen: dict[str, Any]) -> Reply:
        while True:
            kind = self._format
            try:
                res = self._request(
                    partial(self._chat_request, messages, wanted, kind, gen), format_kind=kind
                )
            except _FormatRejected:
                with self._format_lock:  # remembered for this backend's later calls
                    self._format = max(self._format, kind + 1)
                continue
            if not res.choices:
                return _reply("", res.usage)
            choice = res.choices[0]
            text, cut = choice.message.content or "", choice.finish_reason == "length"
            return _reply(text, res.usage, chat_tokens(choice.logprobs), cut)

    def _chat_request(
        self, messages: list[Message], wanted: FieldRequest, kind: int, gen: dict[str, Any]
    ) -> ChatCompletion:
        # A plain dict: "json_object" with a schema is a server extension that the SDK's
        # ResponseFormat types lack.
        fmt: dict[str, Any] = {"response_format": response_format(CHAT_FORMATS[kind], wanted)}
        return self.client.chat.completions.create(
            model=self.model_name,
            # Message dicts are chat message params ({"role", "content"}).
            messages=cast("list[ChatCompletionMessageParam]", messages),
            **fmt,
            **self._logprob_fields(),
            **self._sampling(gen),
        )

    def _logprob_fields(self) -> dict[str, Any]:
        return {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if self.logprobs else {}

    def probability_meta(
        self, messages: list[Message], reply: Reply, rm_type: Judge | str, completion: bool
    ) -> dict[str, Any]:
        """The score / choice distribution from the reply's token log-probabilities; in
        completion mode, a branch off the reply's path is resolved by one-token requests."""
        if not self.logprobs:
            return {"probabilities_unavailable": "not requested (-E logprobs=true asks for them)"}
        if not reply.tokens:
            return {"probabilities_unavailable": f"{self.where} returned no log-probabilities"}
        extend = partial(self._next_token, completion_text(messages)) if completion else None
        try:
            return probability_meta(reply.tokens, reply.text, rm_type, extend)
        except (Unavailable, EngineError) as exc:
            return {"probabilities_unavailable": str(exc)}

    def _next_token(self, prompt: str, reply_prefix: str) -> dict[str, float]:
        """The most probable next tokens after the prompt and part of the reply."""
        res = self._request(
            lambda: self.client.completions.create(
                model=self.model_name,
                prompt=prompt + reply_prefix,
                max_tokens=1,
                temperature=0.0,
                logprobs=TOP_LOGPROBS,
            )
        )
        tokens = completion_tokens(res.choices[0].logprobs) if res.choices else None
        if not tokens:
            raise Unavailable(f"{self.where} returned no log-probabilities")
        return tokens[0].top


def _reply(
    text: str, usage: Any, tokens: list[TokenLogprobs] | None = None, cut: bool = False
) -> Reply:
    if usage is None:
        return Reply(text, tokens=tokens, cut=cut)
    details = getattr(usage, "prompt_tokens_details", None)
    return Reply(
        text,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=getattr(details, "cached_tokens", None),
        tokens=tokens,
        cut=cut,
    )


def check_one_endpoint(engine: str, options: dict[str, Any]) -> None:
    """``base_url`` and ``endpoint`` are one option under two names: refuse both at once."""
    if "endpoint" in options and "base_url" in options:
        raise InputError(f"{engine} engine: give base_url or endpoint, not both")


def _build(preset: str, model_name: str | None, options: dict[str, Any]) -> OpenAICompatEngine:
    check_one_endpoint(preset, options)
    return OpenAICompatEngine(OpenAIOptions(model_name=model_name, **options), PRESETS[preset])


def create(model_name: str | None = None, **options: Any) -> OpenAICompatEngine:
    """Any OpenAI-compatible endpoint (``base_url``), key from OPENAI_API_KEY or ``api_key``."""
    return _build("openai", model_name, options)


def create_together(model_name: str | None = None, **options: Any) -> OpenAICompatEngine:
    """Together AI (TOGETHER_API_KEY)."""
    return _build("together", model_name, options)


def create_mistral(model_name: str | None = None, **options: Any) -> OpenAICompatEngine:
    """Mistral's API (MISTRAL_API_KEY)."""
    return _build("mistral", model_name, options)
