"""The judging programs: sglang ``@function``s that write the verdict JSON themselves.

Layout of every program: the constant prefix (instruction + rendered shots) first, so
RadixAttention / the local prefix cache compute it once and ``run_batch`` can pre-cache
it by tracing; then the example as program arguments; then the JSON object, whose keys
the program writes while the model fills each string field under a regex that admits
only a JSON string body, and picks the score / choice with ``select`` (greedy) or a
regex ``gen`` (sampling).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import sglang as sgl
from sglang.lang.ir import SglFunction

from icrm_sgl.programs.choices import joint_probability
from icrm_sgl.programs.template import Slot, Template
from icrm_sgl.schemas import CHOICES, MAX_FIELD_CHARS, SCORES, public_keys

#: Bumped whenever prompt layout or decoding changes what a verdict would be.
PROGRAM_VERSION = "1"

#: One JSON string character: anything but a quote, backslash or control, or an escape.
JSON_CHAR = r'(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})'
#: A JSON string body of bounded length followed by its closing quote.
FIELD_REGEX = JSON_CHAR + "{0," + str(MAX_FIELD_CHARS) + '}"'

_COMPLETE = re.compile(JSON_CHAR + '*"')
_PARTIAL = re.compile(JSON_CHAR + r"*(\\(?:u[0-9a-fA-F]{0,3})?)?")


@dataclass(frozen=True)
class FinalField:
    """How a verdict's last field is produced and closed."""

    key: str
    values: tuple[str, ...]
    opener: str
    closer: str

    @property
    def select_choices(self) -> list[str]:
        # The closer is part of each choice so that "1" is not a prefix of "10}".
        return [v + self.closer for v in self.values]

    @property
    def regex(self) -> str:
        ordered = sorted(self.values, key=len, reverse=True)
        return "(?:" + "|".join(re.escape(v) for v in ordered) + ")" + re.escape(self.closer)


FINAL_FIELDS = {
    "individual": FinalField("score", tuple(str(n) for n in SCORES), "", "}"),
    "pairwise": FinalField("choice", CHOICES, '"', '"}'),
}


def closing_suffix(value: str) -> str:
    """Text that ends a field cut off by its token budget; '' when it ended normally.

    The value is always a prefix of ``FIELD_REGEX``; a dangling escape is completed
    (``\\`` becomes an escaped backslash, ``\\u12`` is padded) before the quote.
    """
    if _COMPLETE.fullmatch(value):
        return ""
    dangling = _PARTIAL.fullmatch(value).group(1)
    if dangling is None:
        return '"'
    if dangling == "\\":
        return '\\"'
    return "0020"[len(dangling) - 2 :] + '"'


@dataclass(frozen=True)
class ProgramConfig:
    """Everything that shapes a judging program besides its per-example arguments."""

    rm_type: str
    prompt: Template
    completion: bool = True
    field_tokens: int = 128
    sample_final: bool = False


def _write_prompt(s, prompt: Template, args: dict) -> None:
    for seg in prompt.segments:
        s += args[seg.key] if isinstance(seg, Slot) else seg


def var_name(key: str) -> str:
    return re.sub(r"\W+", "_", key)


class _ExecutorStopped(Exception):
    """The stream executor failed; the caller reads ``state.error()``."""


def _read(s, name: str) -> str:
    try:
        return s[name]
    except KeyError:
        raise _ExecutorStopped from None


def _write_verdict(s, config: ProgramConfig) -> None:
    final = FINAL_FIELDS[config.rm_type]
    text_keys = [k for k in public_keys(config.rm_type) if k != final.key]
    with s.var_scope("verdict"):
        for i, key in enumerate(text_keys):
            s += ("{" if i == 0 else ", ") + json.dumps(key) + ': "'
            s += sgl.gen(var_name(key), max_tokens=config.field_tokens, regex=FIELD_REGEX)
            s += closing_suffix(_read(s, var_name(key)))
        s += ", " + json.dumps(final.key) + ": " + final.opener
        if config.sample_final:
            s += sgl.gen(final.key, max_tokens=8, regex=final.regex)
        else:
            s += sgl.select(
                final.key, choices=final.select_choices, choices_method=joint_probability
            )


def build_program(config: ProgramConfig) -> SglFunction:
    """An sglang function for one judging mode, prompt template and decoding choice."""

    def body(s, **args) -> None:
        try:
            if config.completion:
                _write_prompt(s, config.prompt, args)
                _write_verdict(s, config)
                return
            s += sgl.user_begin()
            _write_prompt(s, config.prompt, args)
            s += sgl.user_end()
            s += sgl.assistant_begin()
            _write_verdict(s, config)
            s += sgl.assistant_end()
        except _ExecutorStopped:
            # Submitting anything more (even the end of a var scope, which a normal exit
            # from ``with`` would do) would hang the executor's final sync.
            return

    if config.rm_type == "individual":

        def individual(s, history, user_query, model_output):
            body(s, history=history, user_query=user_query, model_output=model_output)

        return sgl.function(individual)

    def pairwise(s, history, user_query, candidate_A, candidate_B):
        body(
            s,
            history=history,
            user_query=user_query,
            candidate_A=candidate_A,
            candidate_B=candidate_B,
        )

    return sgl.function(pairwise)
