"""Score / choice probabilities from an API's token log-probabilities.

A hosted verdict arrives as one JSON text. With ``logprobs`` the API also returns, for
every token of it, the most probable alternatives. Each selectable field's value (a
score, a choice, a boolean) is found in the text; its probability tree is then walked
token by token: an alternative that spells
out a whole allowed value (followed by what ends it) adds its probability to that
value; one that is only a prefix (``1`` of 10, ``A`` of A+ / A++ / A=B) is followed into
the next token, which the reply itself shows on the path it took, and which ``extend``
(a one-token completion request, where the API allows continuing a text) shows off it.
A prefix that only one allowed value can complete counts for that value (the schema
admits nothing else from there). A branch less probable than ``MIN_BRANCH`` is not
followed. What cannot be resolved is reported as unavailable, never guessed. The result
is renormalised over the allowed values, like the local engine's ``select``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from icrm_sgl.judges.fields import FieldSpec

if TYPE_CHECKING:
    from icrm_sgl.judges import Judge

#: Alternatives asked for per token (OpenAI's maximum).
TOP_LOGPROBS = 20
#: A prefix branch less probable than this is dropped rather than resolved.
MIN_BRANCH = 1e-4


@dataclass(frozen=True)
class Target:
    """Where one field's value starts in a reply, its allowed values, and what may follow
    a complete value: a string's closing quote, or the end of a JSON number / literal."""

    start: re.Pattern[str]
    values: tuple[str, ...]
    ends: str

    @classmethod
    def of(cls, spec: FieldSpec) -> Target:
        quote = '"' if spec.quoted else ""
        start = re.compile(re.escape(json.dumps(spec.key)) + r"\s*:\s*" + quote)
        return cls(start, spec.values, '"' if spec.quoted else ",} \n\t\r")


class Unavailable(Exception):
    """The log-probabilities do not determine the value's distribution; says why."""


@dataclass(frozen=True)
class TokenLogprobs:
    """One generated token and its alternatives (token text -> log-probability)."""

    token: str
    top: dict[str, float]


def chat_tokens(logprobs: Any) -> list[TokenLogprobs] | None:
    """Tokens from a chat completion's ``choices[0].logprobs`` (None when absent)."""
    content = getattr(logprobs, "content", None)
    if not content:
        return None
    return [
        TokenLogprobs(
            t.token, {**{a.token: a.logprob for a in t.top_logprobs or []}, t.token: t.logprob}
        )
        for t in content
    ]


def completion_tokens(logprobs: Any) -> list[TokenLogprobs] | None:
    """Tokens from a text completion's ``choices[0].logprobs`` (None when absent)."""
    tokens = getattr(logprobs, "tokens", None)
    if not tokens:
        return None
    tops = logprobs.top_logprobs or [None] * len(tokens)
    return [
        TokenLogprobs(tok, {**(top or {}), tok: lp})
        for tok, lp, top in zip(tokens, logprobs.token_logprobs, tops, strict=True)
    ]


def _classify(s: str, target: Target) -> tuple[str, str | None]:
    """("value", v) when ``s`` spells out value v; ("open", None) when it may still become
    one of several; ("none", None) when it can be none of them."""
    values = target.values
    reachable = [v for v in values if v.startswith(s)]
    if len(reachable) == 1 and (s or len(values) == 1):
        return "value", reachable[0]  # the schema allows only this value from here on
    if reachable:
        return "open", None
    done = [v for v in values if s.startswith(v)]
    if done:
        value = max(done, key=len)
        if s[len(value)] in target.ends:
            return "value", value
    return "none", None


@dataclass
class _Walk:
    """The state of one walk over a reply's token tree."""

    target: Target
    prefix: str  # the reply up to where the value starts
    extend: Callable[[str], dict[str, float]] | None
    mass: dict[str, float]
    requests: int = 0

    def step(
        self,
        top: dict[str, float],
        head: str,
        consumed: str,
        p_prefix: float,
        path: tuple[list[TokenLogprobs], int] | None,
    ) -> None:
        """Spread the probability of the alternatives at one position over the values."""
        path_token = path[0][path[1]].token if path else None
        for alt, logprob in top.items():
            if not alt.startswith(head):
                continue
            s = consumed + alt[len(head) :]
            p = p_prefix * math.exp(logprob)
            kind, value = _classify(s, self.target)
            if kind == "value" and value is not None:  # a "value" always names one
                self.mass[value] += p
            elif kind == "open" and p >= MIN_BRANCH:
                self.follow(s, p, path if alt == path_token else None)

    def follow(self, s: str, p: float, path: tuple[list[TokenLogprobs], int] | None) -> None:
        """The next token after prefix ``s`` of a value: from the reply, else from ``extend``."""
        if path is not None and path[1] + 1 < len(path[0]):
            tokens, i = path
            self.step(tokens[i + 1].top, "", s, p, (tokens, i + 1))
            return
        if self.extend is None:
            which = ", ".join(v for v in self.target.values if v.startswith(s))
            raise Unavailable(f"the log-probabilities cannot tell {which} apart")
        self.requests += 1
        self.step(self.extend(self.prefix + s), "", s, p, None)


def value_probabilities(
    tokens: list[TokenLogprobs],
    text: str,
    judge: Judge,
    extend: Callable[[str], dict[str, float]] | None = None,
) -> tuple[dict[str, float], int]:
    """The distribution over the judge's reward field's values (a built-in judge: the
    score / choice), and how many ``extend`` calls it took; raises ``Unavailable``."""
    if judge.reward is None:
        raise Unavailable(f"judge {judge.name} names no reward field")
    return field_probabilities(tokens, text, Target.of(judge.field_named(judge.reward)), extend)


def field_probabilities(
    tokens: list[TokenLogprobs],
    text: str,
    target: Target,
    extend: Callable[[str], dict[str, float]] | None = None,
) -> tuple[dict[str, float], int]:
    """The distribution over one field's allowed values and how many ``extend`` calls it
    took; raises ``Unavailable``. ``extend(reply_prefix)`` gives the next token's
    alternatives after the prompt plus ``reply_prefix``."""
    found = list(target.start.finditer(text))
    if not found:
        raise Unavailable("the reply has no score / choice to read")
    if "".join(t.token for t in tokens) != text:
        raise Unavailable("the log-probabilities do not spell out the reply")
    start = found[-1].end()
    offset, index = 0, 0
    while index < len(tokens) and offset + len(tokens[index].token) <= start:
        offset += len(tokens[index].token)
        index += 1
    if index == len(tokens):
        raise Unavailable("the reply ends before its score / choice")
    walk = _Walk(target, text[:start], extend, {v: 0.0 for v in target.values})
    walk.step(tokens[index].top, text[offset:start], "", 1.0, (tokens, index))
    total = sum(walk.mass.values())
    if total <= 0:
        raise Unavailable("no allowed value among the most probable tokens")
    return {v: round(p / total, 6) for v, p in walk.mass.items()}, walk.requests


def probability_meta(
    tokens: list[TokenLogprobs],
    text: str,
    judge: Judge,
    extend: Callable[[str], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The meta entries of every selectable field's distribution (see
    ``Judge.probability_meta``) and ``logprob_requests``; raises ``Unavailable``."""
    distributions, requests = {}, 0
    for spec in judge.fields:
        if spec.selectable:
            distributions[spec.key], used = field_probabilities(
                tokens, text, Target.of(spec), extend
            )
            requests += used
    return {**judge.probability_meta(distributions), "logprob_requests": requests}
