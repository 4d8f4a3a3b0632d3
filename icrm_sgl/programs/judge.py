"""The judging programs: sglang ``@function``s that write the verdict JSON themselves.

Layout of every program: the constant prefix (instruction + rendered shots) first, so
RadixAttention / the local prefix cache compute it once and ``run_batch`` can pre-cache
it by tracing; then the example as program arguments; then the JSON object, and the score /
choice picked with ``select`` (greedy) or a regex ``gen`` (sampling).

The text fields are written in one of two layouts. ``per_field``: the program writes each
key and generates each value under a regex that admits only a JSON string body, each capped
in tokens (one request per field). ``one_request``: one ``gen`` under a regex that fixes
every key and admits JSON string bodies between them (one request for all text fields);
if it stops at its token budget, the fields it did not reach are generated per field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import sglang as sgl
from pydantic import BaseModel
from sglang.lang.ir import SglFunction

from icrm_sgl.errors import EngineError, VerdictError
from icrm_sgl.programs.choices import joint_probability
from icrm_sgl.programs.template import Slot, Template
from icrm_sgl.schemas import CHOICES, MAX_FIELD_CHARS, SCORES, public_keys, validate_verdict

#: Bumped whenever prompt layout or decoding changes what a verdict would be.
PROGRAM_VERSION = "2"

#: One JSON string character: anything but a quote, backslash or control, or an escape.
JSON_CHAR = r'(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})'
#: A JSON string body followed by its closing quote. Its length is bounded in tokens (the
#: field's budget) and in characters by validation, not by a bounded repetition: xgrammar
#: builds a token mask for ``{0,2000}`` in ~0.6 s per token, for ``*`` in microseconds.
FIELD_REGEX = JSON_CHAR + '*"'

#: The layouts of a verdict's text fields (see the module docstring).
LAYOUTS = ("per_field", "one_request")

_COMPLETE = re.compile(JSON_CHAR + '*"')
_PARTIAL = re.compile(JSON_CHAR + r"*(\\(?:u[0-9a-fA-F]{0,3})?)?")
_BODY_CHARS = re.compile(JSON_CHAR + "*")


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
    layout: str = "per_field"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}: expected one of {LAYOUTS}")

    @property
    def text_keys(self) -> list[str]:
        """The verdict's free-text keys, in order (everything but the score / choice)."""
        final = FINAL_FIELDS[self.rm_type].key
        return [k for k in public_keys(self.rm_type) if k != final]


def _write_prompt(s, prompt: Template, args: dict) -> None:
    for seg in prompt.segments:
        s += args[seg.key] if isinstance(seg, Slot) else seg


def var_name(key: str) -> str:
    return re.sub(r"\W+", "_", key)


#: The program variable holding the one-request layout's generated text fields.
BODY_VAR = "body"


class _ExecutorStopped(Exception):
    """The stream executor failed; the caller reads ``state.error()``."""


def _read(s, name: str) -> str:
    try:
        return s[name]
    except KeyError:
        raise _ExecutorStopped from None


def _separator(key: str) -> str:
    """The text between one field's closing quote and the next field's value."""
    return ", " + json.dumps(key) + ': "'


def body_regex(keys: list[str]) -> str:
    """Every text field's value and the keys between them, up to the last closing quote."""
    parts = [FIELD_REGEX] + [re.escape(_separator(k)) + FIELD_REGEX for k in keys[1:]]
    return "".join(parts)


def resume_point(body: str, keys: list[str]) -> tuple[str, int | None, str | None]:
    """Where a one-request body cut off by its token budget continues.

    Returns the text that closes what was cut (a field's closing quote or the rest of a
    separator), the index of the next field to generate (None when the body is complete)
    and the key of the field the cut fell in (None if it fell between fields).
    """
    pos = 0
    for i, key in enumerate(keys):
        start = pos
        pos = _BODY_CHARS.match(body, pos).end()
        if pos == len(body) or body[pos] != '"':
            tail = closing_suffix(body[start:])
            following = i + 1 if i + 1 < len(keys) else None
            return tail + (_separator(keys[i + 1]) if following else ""), following, key
        pos += 1
        if i + 1 == len(keys):
            return "", None, None
        sep, rest = _separator(keys[i + 1]), body[pos:]
        if not rest.startswith(sep):
            return sep[len(rest) :], i + 1, None
        pos += len(sep)
    raise AssertionError("unreachable: the body regex ends with the last field's quote")


def _write_fields(s, config: ProgramConfig, keys: list[str], first: int) -> None:
    """Generate fields ``first``… one request each; the opening quote of ``first`` is written."""
    for i in range(first, len(keys)):
        if i > first:
            s += _separator(keys[i])
        s += sgl.gen(var_name(keys[i]), max_tokens=config.field_tokens, regex=FIELD_REGEX)
        s += closing_suffix(_read(s, var_name(keys[i])))


def _write_verdict(s, config: ProgramConfig) -> None:
    final = FINAL_FIELDS[config.rm_type]
    keys = config.text_keys
    with s.var_scope("verdict"):
        s += "{" + json.dumps(keys[0]) + ': "'
        if config.layout == "per_field":
            _write_fields(s, config, keys, 0)
        else:
            budget = config.field_tokens * len(keys)
            s += sgl.gen(BODY_VAR, max_tokens=budget, regex=body_regex(keys))
            tail, following, _ = resume_point(_read(s, BODY_VAR), keys)
            s += tail
            if following is not None:
                _write_fields(s, config, keys, following)
        s += ", " + json.dumps(final.key) + ": " + final.opener
        if config.sample_final:
            s += sgl.gen(final.key, max_tokens=8, regex=final.regex)
        else:
            s += sgl.select(
                final.key, choices=final.select_choices, choices_method=joint_probability
            )


def write_judgement(s, config: ProgramConfig, **args: str) -> None:
    """Append a whole judgement to a program state: the judge prompt, then the verdict.

    Use it inside your own ``@sgl.function`` (the state's text should be empty, so that
    the judge prompt's constant prefix is shared); ``args`` are the example's fields
    (``history``, ``user_query`` and ``model_output`` or ``candidate_A`` / ``candidate_B``;
    see ``icrm_sgl.programs.prompts.example_fields``). Read the result with ``read_verdict``.
    """
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


def build_program(config: ProgramConfig) -> SglFunction:
    """An sglang function for one judging mode, prompt template and decoding choice."""
    if config.rm_type == "individual":

        def individual(s, history, user_query, model_output):
            write_judgement(
                s, config, history=history, user_query=user_query, model_output=model_output
            )

        return sgl.function(individual)

    def pairwise(s, history, user_query, candidate_A, candidate_B):
        write_judgement(
            s,
            config,
            history=history,
            user_query=user_query,
            candidate_A=candidate_A,
            candidate_B=candidate_B,
        )

    return sgl.function(pairwise)


def read_verdict(state: Any, config: ProgramConfig) -> dict[str, Any]:
    """The validated verdict (public keys) of a state that ran ``write_judgement``.

    Raises ``EngineError`` when the program failed on the engine and ``VerdictError`` when
    its text does not validate; meta information comes from ``verdict_accounting``.
    """
    error = state.error()
    if error is not None:
        raise EngineError(f"the judging program failed: {error}") from error
    try:
        verdict, _ = parse_verdict(config.rm_type, state["verdict"])
    except (ValueError, KeyError) as exc:
        raise VerdictError(f"invalid verdict: {exc}") from exc
    return verdict.to_public()


def _truncated_by_budget(meta: dict) -> bool:
    return (meta.get("finish_reason") or {}).get("type") == "length"


def verdict_accounting(state: Any, config: ProgramConfig) -> dict[str, Any]:
    """Token counts, fields cut by their budget and score / choice probabilities of a run.

    The first request's prompt is the judge prompt, so its ``prompt_tokens`` and
    ``cached_tokens`` say how much of the prompt was reused.
    """
    final = FINAL_FIELDS[config.rm_type]
    keys = config.text_keys
    field_metas = {k: state.get_meta_info(var_name(k)) or {} for k in keys}
    truncated = [k for k, m in field_metas.items() if _truncated_by_budget(m)]
    metas = [m for m in field_metas.values() if m]
    if config.layout == "one_request":
        body_meta = state.get_meta_info(BODY_VAR) or {}
        metas.insert(0, body_meta)
        if _truncated_by_budget(body_meta):
            cut = resume_point(state[BODY_VAR], keys)[2]
            truncated = ([cut] if cut else []) + truncated
    first = metas[0] if metas else {}
    out: dict[str, Any] = {
        "prompt_tokens": first.get("prompt_tokens"),
        "cached_tokens": first.get("cached_tokens"),
        "completion_tokens": sum(m.get("completion_tokens", 0) for m in metas),
        "round_trips": len(metas) + 1,
        "truncated": truncated,
    }
    final_meta = state.get_meta_info(final.key) or {}
    if "probabilities" in final_meta:
        out["probabilities"] = {
            choice[: len(choice) - len(final.closer)]: round(p, 6)
            for choice, p in final_meta["probabilities"].items()
        }
    return out


def parse_verdict(rm_type: str, text: str) -> tuple[BaseModel, list[str]]:
    """Validate a program's verdict text; text fields over the character bound are cut.

    Field lengths are bounded in tokens while decoding, so a field over
    ``MAX_FIELD_CHARS`` characters is rare; it is cut there rather than failing the verdict,
    and its key is returned so the caller can report it.
    """
    data = json.loads(text)
    cut = [k for k, v in data.items() if isinstance(v, str) and len(v) > MAX_FIELD_CHARS]
    for key in cut:
        data[key] = data[key][:MAX_FIELD_CHARS]
    return validate_verdict(rm_type, data), cut
