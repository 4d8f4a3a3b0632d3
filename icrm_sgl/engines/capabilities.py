"""What an engine can do: each engine declares its ``Capabilities`` (see
``protocol.Engine``) and ``ICRM`` enforces them, the same way for every engine.

An option an engine cannot honour is refused with an error that names the engine and the
option; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from icrm_sgl.errors import InputError

#: Generation options and the value that leaves them off; an engine that does not list an
#: option accepts only this value for it.
NEUTRAL: dict[str, Any] = {
    "top_k": -1,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
}
#: Honoured by every engine.
BASIC_SAMPLING = frozenset({"max_tokens", "temperature", "top_p"})
_ALL_SAMPLING = BASIC_SAMPLING | frozenset(NEUTRAL)


@dataclass(frozen=True)
class Capabilities:
    """One engine's abilities: sampling options, prompt modes, verdict enforcement."""

    #: Generation options the engine honours (``max_tokens``, ``temperature``, ``top_p``
    #: always; ``top_k`` and the penalties where listed).
    sampling: frozenset[str]
    #: Prompt modes served, the default first: ``completion`` (plain text), ``chat`` (roles).
    modes: tuple[str, ...]
    #: How the verdict's form is enforced (for the README's engine table and errors).
    constraint: str
    #: The score / choice comes with a probability for every allowed value.
    probabilities: bool
    #: Runs sglang programs token by token (else one request per whole verdict).
    programs: bool

    @property
    def default_mode(self) -> str:
        """The mode used when the caller does not choose one."""
        return self.modes[0]

    def check_sampling(self, engine: str, params: Mapping[str, Any]) -> None:
        """Refuse options this engine would have to ignore."""
        refused = sorted(
            key
            for key, neutral in NEUTRAL.items()
            if key not in self.sampling and params.get(key, neutral) != neutral
        )
        if refused:
            raise InputError(
                f"engine {engine!r} does not support {', '.join(refused)} "
                f"(it honours {', '.join(sorted(self.sampling))})"
            )

    def resolve_mode(self, engine: str, completion: bool | None) -> bool:
        """``completion`` as asked, else the engine's default; a mode it lacks is an error."""
        if completion is None:
            return self.default_mode == "completion"
        mode = "completion" if completion else "chat"
        if mode not in self.modes:
            other = "--chat / completion=False" if completion else "--completion"
            raise InputError(f"engine {engine!r} does not serve {mode} mode; use {other}")
        return completion


#: What every program engine offers (the rest is its modes and constraint).
PROGRAM_ENGINE: dict[str, Any] = {
    "sampling": _ALL_SAMPLING,
    "probabilities": True,
    "programs": True,
}
#: Sampling options every OpenAI-compatible API honours.
OPENAI_SAMPLING = BASIC_SAMPLING | {"frequency_penalty", "presence_penalty"}
