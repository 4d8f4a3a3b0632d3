"""What each kind of OpenAI-compatible server is sent, and how to tell which kind answers.

Servers that compile the verdict's constraint get it with every field bounded (text fields
by a length from their token budget, scores and choices as their allowed values), in the
form each one reads, so that one reply holds a whole verdict:

- ``llama.cpp`` (llama-server, llama-cpp-python's server): the verdict as a GBNF
  ``grammar`` (``hosted.grammar``), in chat and completion requests alike;
- ``vllm``: chat ``response_format`` ``json_schema``; completion ``structured_outputs``;
- ``vllm-legacy`` (vLLM before 0.10.2): the same, with ``guided_json`` for completion;
- ``sglang``: chat ``response_format`` ``json_schema``; completion ``json_schema`` (text);
- ``none`` (a provider's API, an unknown server): standard fields only; chat asks for
  strict ``json_schema`` and falls back to JSON mode where it is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from icrm_sgl.engines.hosted.fields import FieldRequest
from icrm_sgl.engines.hosted.grammar import verdict_grammar
from icrm_sgl.engines.hosted.presets import CompletionSchema

#: Seconds each probe of a server may take.
PROBE_TIMEOUT = 5.0
#: The first vLLM release that reads ``structured_outputs``.
VLLM_STRUCTURED_OUTPUTS = (0, 10, 2)


@dataclass(frozen=True)
class ServerKind:
    """How one kind of server takes the verdict's constraint."""

    name: CompletionSchema
    #: What is sent, for the capabilities' ``constraint`` and the docs.
    constraint: str

    def chat_fields(self, wanted: FieldRequest) -> dict[str, Any]:
        """Keyword arguments of a chat request that constrain it (``extra_body`` for
        non-OpenAI fields); empty for ``none``, whose formats the engine tries in turn."""
        if self.name == "llama.cpp":
            return {"extra_body": {"grammar": verdict_grammar(wanted)}}
        if self.name == "none":
            return {}
        return {"response_format": json_schema_format(wanted, wanted.bounded_schema())}

    def completion_fields(self, wanted: FieldRequest) -> dict[str, Any]:
        """Request body fields that constrain a ``/v1/completions`` request."""
        if self.name == "llama.cpp":
            return {"grammar": verdict_grammar(wanted)}
        if self.name == "vllm":
            return {"structured_outputs": {"json": wanted.bounded_schema()}}
        if self.name == "vllm-legacy":
            return {"guided_json": wanted.bounded_schema()}
        if self.name == "sglang":
            return {"json_schema": json.dumps(wanted.bounded_schema())}
        return {}


SERVER_KINDS: dict[str, ServerKind] = {
    kind.name: kind
    for kind in (
        ServerKind("llama.cpp", "GBNF grammar, every field bounded, validated"),
        ServerKind("vllm", "JSON schema with bounded fields (structured outputs), validated"),
        ServerKind("vllm-legacy", "JSON schema with bounded fields (guided_json), validated"),
        ServerKind("sglang", "JSON schema with bounded fields, validated"),
        ServerKind("none", "JSON-schema structured output where served, validated"),
    )
}


def json_schema_format(wanted: FieldRequest, schema: dict[str, Any]) -> dict[str, Any]:
    """A chat ``response_format`` of type ``json_schema`` for ``schema``."""
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in f"{wanted.judge.name}_verdict")
    spec = {"name": name[:64], "schema": schema, "strict": True}
    return {"type": "json_schema", "json_schema": spec}


def detect(base_url: str, headers: dict[str, str]) -> CompletionSchema:
    """The kind of server at ``base_url`` (``http://host:port/v1``) from its own GET
    endpoints: llama-server's ``/props``, else the ``/openapi.json`` of llama-cpp-python,
    sglang and vLLM; ``none`` when none of them answers."""
    root = base_url.rstrip("/").removesuffix("/v1")
    props = _get_json(f"{root}/props", headers)
    if isinstance(props, dict) and "default_generation_settings" in props:
        return "llama.cpp"
    api = _get_json(f"{root}/openapi.json", headers)
    if not isinstance(api, dict):
        return "none"
    title, paths = str(api.get("info", {}).get("title", "")), set(api.get("paths", {}))
    if "llama.cpp" in title:
        return "llama.cpp"
    if paths & {"/server_info", "/get_server_info"}:
        return "sglang"
    if "/version" in paths:
        return _vllm_kind(_get_json(f"{root}/version", headers))
    return "none"


def _vllm_kind(version: Any) -> CompletionSchema:
    """``vllm``, or ``vllm-legacy`` for a release that predates ``structured_outputs``."""
    text = version.get("version", "") if isinstance(version, dict) else ""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    if match is None:
        return "vllm"
    release = tuple(int(part or 0) for part in match.groups())
    return "vllm-legacy" if release < VLLM_STRUCTURED_OUTPUTS else "vllm"


def _get_json(url: str, headers: dict[str, str]) -> Any:
    """The JSON a GET of ``url`` answers with, or None (an error, a timeout, not JSON)."""
    try:
        response = httpx.get(url, headers=headers, timeout=PROBE_TIMEOUT)
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
