"""What each engine can do, declared once per engine name and enforced by ``ICRM``.

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
    #: Settings of the servers it launches (``num_workers``, ``dtype`` ...); an engine
    #: without one accepts only the value that changes nothing (``LAUNCH_NEUTRAL``).
    launch_options: frozenset[str] = frozenset()

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

    def launch_settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The launch settings to pass on: those this engine has, and any other whose
        value would change something (the engine then refuses it by name)."""
        return {
            key: value
            for key, value in given.items()
            if value is not None
            and (key in self.launch_options or LAUNCH_NEUTRAL.get(key, object()) != value)
        }

    def resolve_mode(self, engine: str, completion: bool | None) -> bool:
        """``completion`` as asked, else the engine's default; a mode it lacks is an error."""
        if completion is None:
            return self.default_mode == "completion"
        mode = "completion" if completion else "chat"
        if mode not in self.modes:
            other = "--chat / completion=False" if completion else "--completion"
            raise InputError(f"engine {engine!r} does not serve {mode} mode; use {other}")
        return completion


_PROGRAM_ENGINE = {"sampling": _ALL_SAMPLING, "probabilities": True, "programs": True}
#: The original IC-RM's launch settings: a server runs ``num_workers`` replicas of
#: ``num_gpu_per_worker`` GPUs each, with a weight ``dtype`` and ``quantization``.
LAUNCH_OPTIONS = frozenset({"num_workers", "num_gpu_per_worker", "dtype", "quantization"})
#: The launch values that change nothing on an engine that launches no server (the
#: original's documented defaults), accepted there and dropped.
LAUNCH_NEUTRAL: dict[str, Any] = {"num_workers": 1, "num_gpu_per_worker": 1}
_OPENAI_SAMPLING = BASIC_SAMPLING | {"frequency_penalty", "presence_penalty"}

#: Engine name → capabilities. Every registered engine has exactly one entry here.
CAPABILITIES: dict[str, Capabilities] = {
    "local": Capabilities(
        modes=("completion", "chat"), constraint="llguidance token masks", **_PROGRAM_ENGINE
    ),
    "sglang": Capabilities(
        modes=("completion", "chat"),
        constraint="server-side grammar (xgrammar)",
        launch_options=LAUNCH_OPTIONS,
        **_PROGRAM_ENGINE,
    ),
    "vllm": Capabilities(
        sampling=_OPENAI_SAMPLING | {"top_k"},
        modes=("completion", "chat"),
        constraint="structured outputs (server grammar), validated",
        probabilities=True,
        programs=False,
        launch_options=LAUNCH_OPTIONS,
    ),
    "openai": Capabilities(
        sampling=_OPENAI_SAMPLING,
        modes=("chat", "completion"),
        constraint="JSON-schema structured output, validated",
        probabilities=True,
        programs=False,
    ),
    "together": Capabilities(
        sampling=_OPENAI_SAMPLING | {"top_k"},
        modes=("chat", "completion"),
        constraint="JSON-schema structured output (chat), validated",
        probabilities=False,
        programs=False,
    ),
    "mistral": Capabilities(
        sampling=_OPENAI_SAMPLING,
        modes=("chat",),
        constraint="JSON-schema structured output, validated",
        probabilities=False,
        programs=False,
    ),
    "claude": Capabilities(
        sampling=BASIC_SAMPLING | {"top_k"},
        modes=("chat",),
        constraint="forced tool call with the verdict schema, validated",
        probabilities=False,
        programs=False,
    ),
}


def engine_capabilities(engine: str) -> Capabilities:
    """The declared capabilities of a registered engine name."""
    try:
        return CAPABILITIES[engine]
    except KeyError as exc:
        raise InputError(
            f"unknown engine {engine!r}: choose one of {', '.join(sorted(CAPABILITIES))}"
        ) from exc
