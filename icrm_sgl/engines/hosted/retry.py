"""The one retry function of every hosted engine: back off on transient errors, re-ask on
invalid verdicts, and fail with a typed error rather than return anything invalid."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from icrm_sgl.errors import EngineError, VerdictError
from icrm_sgl.schemas import public_verdict

if TYPE_CHECKING:
    from icrm_sgl.engines.hosted.base import Message, Reply


@dataclass
class Backoff:
    """Exponential back-off with jitter for transient errors, bounded in attempts."""

    max_attempts: int
    base: float
    cap: float
    where: str
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): full jitter."""
        return random.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))

    def call(self, request: Callable[[], Reply]) -> tuple[Reply, int]:
        """The reply and how many attempts it took; the last error once the bound is hit."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return request(), attempt
            except EngineError as exc:
                if not exc.retryable or attempt == self.max_attempts:
                    if exc.retryable:
                        raise EngineError(f"{exc} (gave up after {attempt} attempts)") from exc
                    raise
                self.sleep(self.delay(attempt))
        raise AssertionError("unreachable")


@dataclass
class _Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    attempts: int = 0

    def add(self, reply: Reply, attempts: int) -> None:
        self.attempts += attempts
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
            value = getattr(reply, name)
            if value is not None:
                setattr(self, name, (getattr(self, name) or 0) + value)


def problem_text(exc: ValidationError) -> str:
    """A validation error in a few lines the model can act on."""
    lines = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(the whole reply)"
        lines.append(f"- {loc}: {err['msg']}")
    return "\n".join(lines)


def fix_request(problem: str) -> str:
    """The user turn appended after an invalid verdict."""
    return (
        "That evaluation is not valid JSON for the required schema:\n"
        f"{problem}\n"
        "Write the corrected evaluation again as one JSON object with exactly the required keys."
    )


def obtain_verdict(
    send: Callable[[list[Message]], Reply],
    prompt: str,
    rm_type: str,
    max_retries: int,
    backoff: Backoff,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask until a reply validates (at most ``max_retries`` re-asks): verdict and meta."""
    messages: list[Message] = [{"role": "user", "content": prompt}]
    usage = _Usage()
    started = time.perf_counter()
    for retries in range(max_retries + 1):
        reply, attempts = backoff.call(partial(send, list(messages)))
        usage.add(reply, attempts)
        try:
            verdict = public_verdict(rm_type, reply.text)
        except ValidationError as exc:
            problem = problem_text(exc)
            messages += [
                {"role": "assistant", "content": reply.text},
                {"role": "user", "content": fix_request(problem)},
            ]
            continue
        meta = {**vars(usage), "retries": retries}
        meta["seconds"] = round(time.perf_counter() - started, 3)
        return verdict, meta
    raise VerdictError(
        f"no valid verdict after {max_retries + 1} replies; last problem: "
        + json.dumps(problem)[1:-1],
        raw=reply.text,
        attempts=max_retries + 1,
    )
