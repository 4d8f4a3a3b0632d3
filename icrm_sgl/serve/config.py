"""The server's settings: one pydantic model, filled from the ``serve`` command line."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ServeConfig(BaseModel):
    """Limits, deadlines and the generation settings every request is judged with."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_queue: int = Field(256, ge=1, description="examples waiting for the engine, at most")
    max_batch: int = Field(8, ge=1, description="examples per judge_batch call")
    deadline: float = Field(300.0, gt=0, description="seconds a request may take, at most")
    max_body_bytes: int = Field(1 << 20, ge=1024)
    drain_timeout: float = Field(30.0, ge=0, description="seconds to finish queued work on exit")
    api_key: SecretStr | None = None
    failed_reward: float | None = Field(
        None, description="/get_reward value for an example without a verdict (default: HTTP 500)"
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
