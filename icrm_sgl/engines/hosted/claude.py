"""Anthropic's Messages API: the verdict is the input of a forced ``record_verdict`` tool
call whose input schema is the verdict schema."""

from __future__ import annotations

import json
from typing import Any

import anthropic

from icrm_sgl.engines.capabilities import BASIC_SAMPLING, Capabilities
from icrm_sgl.engines.hosted.base import (
    HostedEngine,
    HostedOptions,
    connection_error,
    resolve_key,
    sdk_status_error,
)
from icrm_sgl.engines.hosted.fields import FieldRequest
from icrm_sgl.engines.hosted.presets import CLAUDE_KEY_ENV
from icrm_sgl.engines.hosted.reask import Message, Reply
from icrm_sgl.errors import InputError

TOOL_NAME = "record_verdict"


def verdict_tool(wanted: FieldRequest) -> dict[str, Any]:
    """The tool whose input is the verdict (or the fields of it still ``wanted``)."""
    return {
        "name": TOOL_NAME,
        "description": "Record the evaluation as a JSON object with exactly the required keys.",
        "input_schema": wanted.json_schema(),
    }


def request_params(
    model: str, messages: list[Message], wanted: FieldRequest, gen: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments of ``messages.create`` for one verdict request."""
    params: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": gen["max_tokens"],
        "tools": [verdict_tool(wanted)],
        "tool_choice": {"type": "tool", "name": TOOL_NAME},
    }
    # Sent in the body: recent models refuse temperature and top_p together, so top_p goes
    # only when it narrows sampling (1.0 is the no-op); temperature whenever it is set,
    # 0 included (the API's default is 1.0, not greedy).
    sampling: dict[str, Any] = {}
    if gen.get("temperature") is not None:
        sampling["temperature"] = gen["temperature"]
    if gen.get("top_p", 1.0) < 1.0:
        sampling["top_p"] = gen["top_p"]
    if gen.get("top_k", -1) > 0:
        sampling["top_k"] = gen["top_k"]
    if sampling:
        params["extra_body"] = sampling
    return params


def parse_response(res: Any) -> Reply:
    """The tool input as JSON text (any text reply when the tool was not called) + usage."""
    tool = next((b for b in res.content if b.type == "tool_use" and b.name == TOOL_NAME), None)
    if tool is not None:
        text = json.dumps(tool.input, ensure_ascii=False)
    else:
        text = "".join(getattr(b, "text", "") for b in res.content)
    usage = res.usage
    return Reply(
        text,
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        cached_tokens=getattr(usage, "cache_read_input_tokens", None),
        cut=res.stop_reason == "max_tokens",
    )


class ClaudeEngine(HostedEngine):
    """Claude models through the ``anthropic`` SDK; chat only (the prompt is one user turn)."""

    engine_name = "claude"
    capabilities = Capabilities(
        sampling=BASIC_SAMPLING | {"top_k"},
        modes=("chat",),
        constraint="forced tool call with the verdict schema, validated",
        probabilities=False,
        programs=False,
    )

    def __init__(self, options: HostedOptions) -> None:
        if not options.model_name:
            raise InputError("claude engine needs a model name, e.g. --model claude-sonnet-4-5")
        self._key = resolve_key(options, CLAUDE_KEY_ENV, not options.base_url, "claude engine")
        self.client = anthropic.Anthropic(
            api_key=self._key or "none",
            base_url=options.base_url,
            timeout=options.timeout,
            max_retries=0,
        )
        super().__init__(options, options.model_name)

    def shutdown(self) -> None:
        """Close the HTTP client's connections."""
        self.client.close()

    def send(
        self, messages: list[Message], wanted: FieldRequest, completion: bool, gen: dict[str, Any]
    ) -> Reply:
        params = request_params(self.model_name, messages, wanted, gen)
        try:
            return parse_response(self.client.messages.create(**params))
        except anthropic.APIStatusError as exc:
            raise sdk_status_error(exc, self.where, self._key) from exc
        except (anthropic.APITimeoutError, anthropic.APIConnectionError) as exc:
            raise connection_error(exc, self.where) from exc


def create(model_name: str | None = None, **options: Any) -> ClaudeEngine:
    """Claude via Anthropic's API (ANTHROPIC_API_KEY or ``api_key``)."""
    return ClaudeEngine(HostedOptions(model_name=model_name, **options))
