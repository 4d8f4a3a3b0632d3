"""Settings of the sglang engine: an endpoint to connect to, or how to launch servers."""

from __future__ import annotations

import shlex
import sys
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from icrm_sgl.engines.protocol import EngineOptions
from icrm_sgl.engines.sglang.router import (
    Policy,
)
from icrm_sgl.plumbing.defaults import SEED

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
    seed: int | None = SEED
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
