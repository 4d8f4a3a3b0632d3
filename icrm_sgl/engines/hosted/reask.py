"""The one validate-and-re-ask loop of every hosted engine: each request tried under the
busy-retry policy (``engines.retry``), follow-ups for what a reply left out or got wrong,
and a typed error rather than anything invalid; with the API answer it reads (``Reply``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from icrm_sgl.engines.hosted.fields import FieldRequest, Unreadable, read_fields
from icrm_sgl.engines.hosted.logprobs import TokenLogprobs
from icrm_sgl.engines.retry import RetryPolicy
from icrm_sgl.errors import VerdictError

if TYPE_CHECKING:
    from icrm_sgl.judges import Judge

Message = dict[str, str]


@dataclass(frozen=True)
class Reply:
    """One API answer: the verdict text the model produced and the usage it reported."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    tokens: list[TokenLogprobs] | None = None  # per-token log-probabilities, if asked for
    cut: bool = False  # the reply stopped at its token budget
    requests: int = 1  # HTTP requests it took (a refused request form counts)


@dataclass
class _Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    attempts: int = 0
    #: HTTP requests: every try of every reply, refused request forms included.
    requests: int = 0

    def add(self, reply: Reply, attempts: int) -> None:
        self.attempts += attempts
        self.requests += reply.requests + attempts - 1
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
            value = getattr(reply, name)
            if value is not None:
                setattr(self, name, (getattr(self, name) or 0) + value)


def problem_text(errors: list[Any]) -> str:
    """Validation errors in a few lines the model can act on."""
    lines = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(the whole reply)"
        lines.append(f"- {loc}: {err['msg']}")
    return "\n".join(lines)


def follow_up(problem: str, cut: bool, wanted: FieldRequest) -> str:
    """The user turn after a reply that did not complete the verdict."""
    keys = ", ".join(json.dumps(k) for k in wanted.keys)
    if problem:
        why = f"That evaluation is not valid JSON for the required schema:\n{problem}"
    else:
        why = "That evaluation was cut off at its length limit." if cut else "Keys are missing."
    return f"{why}\nWrite only the remaining keys ({keys}) as one JSON object, briefly."


@dataclass
class _Collected:
    """The valid fields gathered so far over one example's replies."""

    judge: Judge
    fields: dict[str, Any] = field(default_factory=dict)

    def add(self, found: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The public verdict once every field is valid, else None and what to fix
        (fields with a problem are dropped, to be asked for again)."""
        self.fields.update(found)
        try:
            return self.judge.public(self.judge.validate(self.fields)), ""
        except ValidationError as exc:
            wrong = [e for e in exc.errors() if e["type"] != "missing"]
        for err in wrong:
            self.fields.pop(str(err["loc"][0]) if err["loc"] else "", None)
        return None, problem_text(wrong)


def obtain_verdict(
    send: Callable[[list[Message], FieldRequest], Reply],
    prompt: str,
    wanted: FieldRequest,
    max_retries: int,
    backoff: RetryPolicy,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask for the fields ``wanted`` until the replies add up to a valid verdict (at most
    ``max_retries`` follow-ups): a reply cut by its budget keeps what it finished, an
    invalid field is asked for again."""
    messages: list[Message] = [{"role": "user", "content": prompt}]
    collected = _Collected(wanted.judge)
    usage = _Usage()
    started = time.perf_counter()
    for retries in range(max_retries + 1):
        reply, attempts = backoff.call(partial(send, list(messages), wanted))
        usage.add(reply, attempts)
        try:
            verdict, problem = collected.add(read_fields(reply.text, reply.cut, wanted))
        except Unreadable as exc:
            verdict, problem = None, f"- (the whole reply): {exc}"
        if verdict is not None:
            meta = {**vars(usage), "retries": retries}
            meta["seconds"] = round(time.perf_counter() - started, 3)
            return verdict, meta
        progress = len(wanted.missing(collected.fields).keys) < len(wanted.keys)
        wanted = wanted.missing(collected.fields)
        messages += [
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": follow_up(problem, reply.cut, wanted)},
        ]
    if reply.cut and not progress:
        problem = "each reply was cut by its token budget before a field was finished"
        problem += " (raise --max-tokens)"
    raise VerdictError(
        f"no valid verdict after {max_retries + 1} replies; last problem: "
        + json.dumps(problem)[1:-1],
        raw=reply.text,
        attempts=max_retries + 1,
    )
