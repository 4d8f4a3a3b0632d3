"""The server's settings: one pydantic model, whose fields make the ``serve`` command's
own options (``cli.options.setting_option``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ServeConfig(BaseModel):
    """Limits, deadlines and the generation settings every request is judged with."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=0, le=65535)
    max_queue: int = Field(
        256,
        ge=1,
        description="Examples waiting for the engine; more get HTTP 429 with Retry-After.",
    )
    max_batch: int = Field(
        8, ge=1, description="Examples per judge_batch call (use 64+ on an sglang server)."
    )
    deadline: float = Field(
        300.0,
        gt=0,
        description="Seconds a request may take (HTTP 504 after); clients may ask for less.",
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger request bodies get HTTP 413.")
    drain_timeout: float = Field(
        30.0,
        ge=0,
        description="On SIGINT/SIGTERM, seconds to finish queued examples before refusing them.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="Require 'Authorization: Bearer KEY' (prefer the variable: argv is visible "
        "to ps).",
    )
    failed_reward: float | None = Field(
        None,
        description="/get_reward value for a query without a verdict (default: the request "
        "fails, 500).",
    )
    both_orders: bool = Field(
        False,
        description="Judge each two-reply example A/B and B/A and answer the reconciled "
        "record, as score --both-orders does (each counts as two examples in the queue).",
    )
    gen: dict[str, Any] = Field(default_factory=dict)

    @property
    def shutdown_grace(self) -> float:
        """How long uvicorn waits for open requests once it stops listening. That is when
        the drain is over: nothing is queued or in the engine, or at the latest
        ``drain_timeout`` plus the engine's grace for the batch it holds
        (``batcher.ENGINE_GRACE``, 10 s). By then every request has its answer (its
        verdicts, or 503 for examples the drain gave up on, within the half second a
        waiting request takes to notice), so this only adds time to send the answers."""
        return self.drain_timeout + 5.0
