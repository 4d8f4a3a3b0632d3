"""The hosted providers' defaults: endpoint, API-key variable, what their APIs accept.

Plain data with no client library imported, so that the command line can check a key or
an endpoint before it loads anything heavy (``preflight``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from icrm_sgl.engines.capabilities import OPENAI_SAMPLING, Capabilities

CompletionSchema = Literal["vllm", "vllm-legacy", "llama.cpp", "sglang", "none"]


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
    #: What the engine offers with this provider (declared with the provider's defaults):
    #: ``top_k`` in its sampling where the server reads it (the OpenAI API has none),
    #: ``probabilities`` where the API returns token log-probabilities when asked.
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

#: Claude's API key variable; a ``base_url`` of your own needs none.
CLAUDE_KEY_ENV = "ANTHROPIC_API_KEY"


def needs_key(preset: Preset, base_url: str | None) -> bool:
    """A key is needed for the provider's own endpoint, not for a server of your own."""
    return preset.key_required and base_url in (None, preset.base_url)
