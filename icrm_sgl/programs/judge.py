"""The judging programs: sglang ``@function``s that write the verdict JSON themselves.

Every program is generated from a judge (``icrm_sgl.judges``). Layout: the constant prefix
(instruction + rendered shots) first, so RadixAttention / the local prefix cache compute it
once and ``run_batch`` can pre-cache it by tracing; then the example as program arguments;
then the JSON object, its fields in the verdict model's order: text fields generated, each
choice / integer / boolean picked with ``select`` (greedy) or a regex ``gen`` (sampling).

Consecutive text fields are written in one of two layouts. ``per_field``: the program
writes each key and generates each value under a regex that admits only a JSON string
body, each capped in tokens (one request per field). ``one_request``: one ``gen`` under a
regex that fixes every key and admits JSON string bodies between them (one request per
run of text fields); if it stops at its token budget, the fields it did not reach are
generated per field.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import Any

from sglang.lang import api as sgl  # not the package's __init__ (plumbing/deferred_import.py)
from sglang.lang.ir import SglFunction

from icrm_sgl.errors import EngineError, VerdictError
from icrm_sgl.judges import Judge
from icrm_sgl.judges.fields import FieldSpec
from icrm_sgl.judges.template import Slot, Template
from icrm_sgl.plumbing.defaults import FIELD_TOKENS
from icrm_sgl.programs.choices import joint_probability

#: Bumped whenever prompt layout or decoding changes what a verdict would be, or what a
#: record's meta holds (3: choice probabilities keyed by the choice's text; a sampled
#: custom verdict's ``reward``), so that cached records never mix the two.
PROGRAM_VERSION = "3"

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
class Selection:
    """How a selectable field (choice, int, bool) is produced and closed; its values as
    the JSON spells them (a choice escaped: ``FieldSpec.values``)."""

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

    @property
    def max_tokens(self) -> int:
        """Tokens enough for the longest value and closer (a token is at least a byte)."""
        return max(len(c.encode("utf-8")) for c in self.select_choices) + 1

    def spelled(self, choice: str) -> str:
        """A select choice without its closer: the value as the JSON spells it."""
        return choice[: len(choice) - len(self.closer)]


def selection(spec: FieldSpec, last: bool) -> Selection:
    """The selection of a field: its values, quoted for a choice, closed by what follows
    (the object's ``}`` for the last field, else the comma)."""
    quote = '"' if spec.quoted else ""
    return Selection(spec.key, spec.values, quote, quote + ("}" if last else ","))


def closing_suffix(value: str) -> str:
    """Text that ends a field cut off by its token budget; '' when it ended normally.

    The value is always a prefix of ``FIELD_REGEX``; a dangling escape is completed
    (``\\`` becomes an escaped backslash, ``\\u12`` is padded) before the quote.
    """
    if _COMPLETE.fullmatch(value):
        return ""
    partial = _PARTIAL.fullmatch(value)
    assert partial is not None, value  # every prefix of FIELD_REGEX matches _PARTIAL
    dangling = partial.group(1)
    if dangling is None:
        return '"'
    if dangling == "\\":
        return '\\"'
    return "0020"[len(dangling) - 2 :] + '"'


@dataclass(frozen=True)
class ProgramConfig:
    """Everything that shapes a judging program besides its per-example arguments."""

    judge: Judge
    prompt: Template
    completion: bool = True
    field_tokens: int = FIELD_TOKENS
    sample_final: bool = False
    layout: str = "per_field"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}: expected one of {LAYOUTS}")

    @property
    def rm_type(self) -> str:
        """The judge's name."""
        return self.judge.name

    @property
    def text_keys(self) -> list[str]:
        """The verdict's free-text keys, in order."""
        return [f.key for f in self.judge.text_fields]

    def budget(self, spec: FieldSpec) -> int:
        """A text field's token budget: the program's, or the field's own when smaller."""
        return min(self.field_tokens, spec.max_tokens or self.field_tokens)


def _write_prompt(s, prompt: Template, args: dict) -> None:
    for seg in prompt.segments:
        s += args[seg.key] if isinstance(seg, Slot) else seg


#: The program's variables come in two namespaces no verdict key can cross: each field's
#: value under ``field:`` and its key (``field_var``), the program's own under ``icrm:``:
#: the verdict's text (``VERDICT_VAR``) and the one-request layout's generated text runs
#: (``body_var``). So a field may be called anything, ``verdict`` included, and a program
#: that calls ``write_judgement`` keeps its own variables apart from the judge's.
FIELD_PREFIX = "field:"
VERDICT_VAR = "icrm:verdict"
BODY_VAR = "icrm:body"


def field_var(key: str) -> str:
    """The program variable of the field whose public key is ``key``."""
    return FIELD_PREFIX + key


def body_var(position: int) -> str:
    """The variable of the one-request body of the text run at ``position``."""
    return f"{BODY_VAR}:{position}"


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
        chars = _BODY_CHARS.match(body, pos)
        assert chars is not None  # a starred pattern matches everywhere
        pos = chars.end()
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


def runs(fields: tuple[FieldSpec, ...]) -> list[list[FieldSpec]]:
    """The fields grouped as the program writes them: each run of consecutive text
    fields together, each selectable field alone."""
    groups: list[list[FieldSpec]] = []
    for spec in fields:
        if spec.kind == "text" and groups and groups[-1][0].kind == "text":
            groups[-1].append(spec)
        else:
            groups.append([spec])
    return groups


def _write_fields(s, config: ProgramConfig, specs: list[FieldSpec], first: int) -> None:
    """Generate fields ``first``… one request each; the opening quote of ``first`` is written."""
    for i in range(first, len(specs)):
        key = specs[i].key
        if i > first:
            s += _separator(key)
        s += sgl.gen(field_var(key), max_tokens=config.budget(specs[i]), regex=FIELD_REGEX)
        s += closing_suffix(_read(s, field_var(key)))


def _write_text_run(s, config: ProgramConfig, specs: list[FieldSpec], position: int) -> None:
    if config.layout == "per_field":
        _write_fields(s, config, specs, 0)
        return
    keys = [f.key for f in specs]
    budget = sum(config.budget(f) for f in specs)
    s += sgl.gen(body_var(position), max_tokens=budget, regex=body_regex(keys))
    tail, following, _ = resume_point(_read(s, body_var(position)), keys)
    s += tail
    if following is not None:
        _write_fields(s, config, specs, following)


def _write_selection(s, config: ProgramConfig, chosen: Selection) -> None:
    name = field_var(chosen.key)
    if config.sample_final:
        s += sgl.gen(name, max_tokens=chosen.max_tokens, regex=chosen.regex)
    else:
        s += sgl.select(name, choices=chosen.select_choices, choices_method=joint_probability)


def _write_verdict(s, config: ProgramConfig) -> None:
    groups = runs(config.judge.fields)
    lead = ""  # what comes before the next key: a selection's closer holds its comma
    with s.var_scope(VERDICT_VAR):
        s += "{"
        for position, group in enumerate(groups):
            first = group[0]
            if first.kind == "text":
                s += lead + json.dumps(first.key) + ': "'
                _write_text_run(s, config, group, position)
                lead = ", "
                continue
            chosen = selection(first, last=position == len(groups) - 1)
            s += lead + json.dumps(first.key) + ": " + chosen.opener
            _write_selection(s, config, chosen)
            lead = " "
        if groups[-1][0].kind == "text":
            s += "}"


def write_judgement(s, config: ProgramConfig, /, **args: str) -> None:
    """Append a whole judgement to a program state: the judge prompt, then the verdict.

    Use it inside your own ``@sgl.function`` (the state's text should be empty, so that
    the judge prompt's constant prefix is shared); ``args`` are the example's fields (the
    judge's inputs: ``config.judge.example_fields(example)``). Read the result with
    ``read_verdict``.
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
    """An sglang function for one judge, prompt and decoding choice; its arguments are
    the judge's inputs."""

    def program(s, **args: str) -> None:
        write_judgement(s, config, **args)

    names = ("s", *config.judge.inputs.keys)
    program.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    )
    program.__name__ = re.sub(r"\W+", "_", config.judge.name)
    return sgl.function(program)


def read_verdict(state: Any, config: ProgramConfig) -> dict[str, Any]:
    """The validated verdict (public keys) of a state that ran ``write_judgement``.

    Raises ``EngineError`` when the program failed on the engine and ``VerdictError`` when
    its text does not validate; meta information comes from ``verdict_accounting``.
    """
    error = state.error()
    if error is not None:
        raise EngineError(f"the judging program failed: {error}") from error
    try:
        verdict, _ = config.judge.parse(verdict_text(state))
    except (ValueError, KeyError) as exc:
        raise VerdictError(f"invalid verdict: {exc}") from exc
    return verdict


def verdict_text(state: Any) -> str:
    """The verdict JSON a state that ran ``write_judgement`` wrote (``KeyError`` if none)."""
    return state[VERDICT_VAR]


def _truncated_by_budget(meta: dict) -> bool:
    return (meta.get("finish_reason") or {}).get("type") == "length"


def _text_metas(state: Any, config: ProgramConfig) -> tuple[list[dict], list[str]]:
    """The requests of the text fields (bodies first in their run) and the fields cut."""
    metas: list[dict] = []
    truncated: list[str] = []
    for position, group in enumerate(runs(config.judge.fields)):
        if group[0].kind != "text":
            continue
        keys = [f.key for f in group]
        field_metas = {k: state.get_meta_info(field_var(k)) or {} for k in keys}
        cut = [k for k, m in field_metas.items() if _truncated_by_budget(m)]
        if config.layout == "one_request":
            body_meta = state.get_meta_info(body_var(position)) or {}
            metas.append(body_meta)
            if _truncated_by_budget(body_meta):
                where = resume_point(state[body_var(position)], keys)[2]
                cut = ([where] if where else []) + cut
        metas += [m for m in field_metas.values() if m]
        truncated += cut
    return metas, truncated


def verdict_accounting(state: Any, config: ProgramConfig) -> dict[str, Any]:
    """Token counts, fields cut by their budget and the value distributions of a run.

    The first request's prompt is the judge prompt, so its ``prompt_tokens`` and
    ``cached_tokens`` say how much of the prompt was reused.
    """
    metas, truncated = _text_metas(state, config)
    selected = [f for f in config.judge.fields if f.selectable]
    first = metas[0] if metas else {}
    out: dict[str, Any] = {
        "prompt_tokens": first.get("prompt_tokens"),
        "cached_tokens": first.get("cached_tokens"),
        "completion_tokens": sum(m.get("completion_tokens", 0) for m in metas),
        "round_trips": len(metas) + len(selected),
        "truncated": truncated,
    }
    distributions = {}
    for position, spec in enumerate(config.judge.fields):
        meta = state.get_meta_info(field_var(spec.key)) or {} if spec.selectable else {}
        if "probabilities" in meta:
            chosen = selection(spec, position == len(config.judge.fields) - 1)
            distributions[spec.key] = {
                chosen.spelled(choice): round(p, 6) for choice, p in meta["probabilities"].items()
            }
    out.update(config.judge.probability_meta(distributions))
    return out
