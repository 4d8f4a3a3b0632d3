"""OpenAI-compatible APIs (OpenAI, Together, Mistral, vLLM, sglang, llama.cpp servers) via
the official ``openai`` client, with the verdict's constraint sent in the form each server
reads (``servers``): known before the first request, from the preset, the options or the
server itself."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import openai
from pydantic import Field

from icrm_sgl.engines.hosted.base import (
    HostedEngine,
    HostedOptions,
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
from icrm_sgl.engines.hosted.presets import PRESETS as PRESETS
from icrm_sgl.engines.hosted.presets import CompletionSchema, Preset, needs_key
from icrm_sgl.engines.hosted.reask import Message, Reply
from icrm_sgl.engines.hosted.servers import SERVER_KINDS, detect, json_schema_format
from icrm_sgl.errors import EngineError, InputError

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

    from icrm_sgl.judges import Judge

#: How a chat request to a server of unknown kind asks for JSON, strictest first; a server
#: that rejects one gets the next.
CHAT_FORMATS = ("json_schema", "json_object_schema", "json_object")


class OpenAIOptions(HostedOptions):
    """Settings of the OpenAI-compatible engines."""

    #: The server's kind (``servers``): what it compiles, in chat and completion requests.
    completion_schema: CompletionSchema | None = Field(
        None, description="server kind: llama.cpp, vllm, vllm-legacy, sglang, none (detected)"
    )
    #: Ask for token log-probabilities (default: the preset's ``probabilities``); it sets
    #: the engine's ``capabilities.probabilities``.
    logprobs: bool | None = None


def response_format(kind: str, wanted: FieldRequest) -> dict[str, Any]:
    """The chat ``response_format`` for one of ``CHAT_FORMATS``, for the fields ``wanted``."""
    if kind == "json_schema":
        return json_schema_format(wanted, wanted.json_schema())
    if kind == "json_object_schema":  # llama.cpp servers constrain JSON mode to this schema
        return {"type": "json_object", "schema": wanted.bounded_schema()}
    return {"type": "json_object"}


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
    """One call per verdict, constrained in the form the server's kind reads; a server of
    unknown kind gets strict JSON-schema structured output in chat (else JSON mode) and
    no constraint fields in completion requests."""

    def __init__(self, options: OpenAIOptions, preset: Preset) -> None:
        self.engine_name = preset.name
        self.preset = preset
        key_wanted = needs_key(preset, options.base_url)
        base_url = options.base_url or preset.base_url
        self._key = resolve_key(options, preset.key_env, key_wanted, f"{preset.name} engine")
        kind = options.completion_schema or self._resolve_kind(options.base_url)
        # The resolved kind is a verdict setting: it goes into the options (cache keys).
        options = options.model_copy(update={"base_url": base_url, "completion_schema": kind})
        self.client = openai.OpenAI(
            api_key=self._key or "none",
            base_url=options.base_url,
            timeout=options.timeout,
            max_retries=0,
        )
        self.completion_schema: CompletionSchema = kind
        self.server_kind = SERVER_KINDS[kind]
        constraint = (
            self.server_kind.constraint if kind != "none" else preset.capabilities.constraint
        )
        probabilities = preset.capabilities.probabilities
        self.capabilities = dataclasses.replace(
            preset.capabilities,
            constraint=constraint,
            probabilities=probabilities if options.logprobs is None else options.logprobs,
        )
        self._format = 0
        self._format_lock = threading.Lock()
        super().__init__(options, options.model_name or "")
        if not self.model_name:
            self.model_name = self._served_model()

    def _resolve_kind(self, base_url: str | None) -> CompletionSchema:
        """The preset's kind; for a server of your own behind a preset of unknown kind
        (``openai``, ``together``, ``mistral``), what the server says it is."""
        preset = self.preset
        if preset.completion_schema != "none" or base_url is None or base_url == preset.base_url:
            return preset.completion_schema
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        return detect(base_url, headers)

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
        if "top_k" in self.capabilities.sampling and gen.get("top_k", -1) > 0:
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
        logprobs: dict[str, Any] = (
            {"logprobs": TOP_LOGPROBS} if self.capabilities.probabilities else {}
        )
        res = self._request(
            lambda: self.client.completions.create(
                model=self.model_name,
                prompt=completion_text(messages),
                **self._sampling(gen, self.server_kind.completion_fields(wanted)),
                **logprobs,
            )
        )
        if not res.choices:
            return _reply("", res.usage)
        choice = res.choices[0]
        tokens = completion_tokens(choice.logprobs)
        return _reply(choice.text, res.usage, tokens, choice.finish_reason == "length")

    def _chat(self, messages: list[Message], wanted: FieldRequest, gen: dict[str, Any]) -> Reply:
        if self.server_kind.name != "none":
            fields = self.server_kind.chat_fields(wanted)
            res = self._request(partial(self._chat_request, messages, fields, gen))
            return _chat_reply(res)
        rejected = 0
        while True:
            kind = self._format
            fields = {"response_format": response_format(CHAT_FORMATS[kind], wanted)}
            try:
                res = self._request(
                    partial(self._chat_request, messages, fields, gen), format_kind=kind
                )
            except _FormatRejected:
                rejected += 1
                with self._format_lock:  # remembered for this backend's later calls
                    self._format = max(self._format, kind + 1)
                continue
            return dataclasses.replace(_chat_reply(res), requests=1 + rejected)

    def _chat_request(
        self, messages: list[Message], fields: dict[str, Any], gen: dict[str, Any]
    ) -> ChatCompletion:
        # ``fields``: a plain-dict ``response_format`` ("json_object" with a schema is a
        # server extension that the SDK's types lack) or an ``extra_body`` (a grammar).
        fields = dict(fields)
        sampling = self._sampling(gen, fields.pop("extra_body", None))
        return self.client.chat.completions.create(
            model=self.model_name,
            # Message dicts are chat message params ({"role", "content"}).
            messages=cast("list[ChatCompletionMessageParam]", messages),
            **fields,
            **self._logprob_fields(),
            **sampling,
        )

    def _logprob_fields(self) -> dict[str, Any]:
        return (
            {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
            if self.capabilities.probabilities
            else {}
        )

    def probability_meta(
        self, messages: list[Message], reply: Reply, judge: Judge, completion: bool
    ) -> dict[str, Any]:
        """The score / choice distribution from the reply's token log-probabilities; in
        completion mode, a branch off the reply's path is resolved by one-token requests."""
        if not self.capabilities.probabilities:
            return {"probabilities_unavailable": "not requested (-E logprobs=true asks for them)"}
        if not reply.tokens:
            return {"probabilities_unavailable": f"{self.where} returned no log-probabilities"}
        extend = partial(self._next_token, completion_text(messages)) if completion else None
        try:
            return probability_meta(reply.tokens, reply.text, judge, extend)
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


def _chat_reply(res: ChatCompletion) -> Reply:
    if not res.choices:
        return _reply("", res.usage)
    choice = res.choices[0]
    text, cut = choice.message.content or "", choice.finish_reason == "length"
    return _reply(text, res.usage, chat_tokens(choice.logprobs), cut)


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
