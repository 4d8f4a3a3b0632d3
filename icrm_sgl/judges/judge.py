"""A judge: a verdict model, a prompt template and optionally shots; the rest is derived.

From the definition come the fields a program produces (``fields``), the arguments an
example must supply (``inputs``), the prompt with its shots (``prompt``), the JSON schema
hosted engines get, validation, the expected values and reward of a verdict, and the
identity that cache keys and ``meta`` carry (``fingerprint``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from icrm_sgl.errors import InputError
from icrm_sgl.judges.fields import FieldSpec, model_fields
from icrm_sgl.judges.inputs import Inputs
from icrm_sgl.judges.template import Slot, Template

#: Longest text a free-text verdict field may hold, in characters.
MAX_FIELD_CHARS = 2000
DECIMALS = 6

Shot = dict[str, Any]


@dataclass(frozen=True)
class PairSpec:
    """A judge that compares two replies: which example keys hold them, and how its
    reward field's values read with the replies swapped (for judging both orders)."""

    sides: tuple[str, str]
    swapped: Mapping[str, str]

    def check(self, judge: Judge) -> None:
        """The replies are two of the judge's inputs, its reward a choice field with
        numbers, and the swap reads every choice as a choice and back (one line each)."""
        sides = self.sides
        if not (isinstance(sides, tuple | list) and len(sides) == 2):
            raise InputError(f"pair: replies must name two inputs, got {sides!r}")
        if sides[0] == sides[1]:
            raise InputError(f"pair: replies name {sides[0]!r} twice; give two different inputs")
        for side in sides:
            if side not in judge.inputs.marks:
                known = ", ".join(sorted(judge.inputs.marks))
                raise InputError(f"pair: reply {side!r} is not one of the judge's inputs ({known})")
        spec = judge.field_named(judge.reward) if judge.reward is not None else None
        if spec is None or spec.kind != "choice":
            raise InputError(
                'pair: the reward must be a choice field with scores (reward = "<field>"): '
                "the swap says how its choices read with the replies swapped"
            )
        self._check_swap(spec)

    def _check_swap(self, spec: FieldSpec) -> None:
        swap, choices = self.swapped, spec.texts
        if not isinstance(swap, Mapping):
            raise InputError(f"pair: swap must map choices to choices, got {swap!r}")
        for key, value in swap.items():
            if key not in choices:
                raise InputError(f"pair: swap: {key!r} is not a choice of {spec.key!r}")
            if value not in choices:
                raise InputError(f"pair: swap: {key!r} reads as {value!r}, not a choice")
        missing = [c for c in choices if c not in swap]
        if missing:
            raise InputError(f"pair: swap gives no reading for choice {missing[0]!r}")
        for key, value in swap.items():
            if swap[value] != key:
                raise InputError(
                    f"pair: swap is not its own inverse: {key!r} reads as {value!r} but "
                    f"{value!r} reads as {swap[value]!r}"
                )


@dataclass(frozen=True, eq=False)
class Judge:
    """A verdict model plus the templates and shots that ask for it.

    ``overall`` holds the instruction with a ``{$shots}`` slot and one slot per input;
    ``shot`` writes one shot (its inputs, ``{$index}`` and ``{$feedback}``); ``feedback``
    optionally writes a shot's verdict (default: the JSON line a program writes).
    ``reward`` names the field whose (expected) value is the example's reward, or
    ``weights`` combine several fields' (mapped to 0-1 first with ``normalize``);
    ``reward_key`` is the meta entry that carries it. ``scale`` gives the reward choice
    field's values a number, ``scales`` each weighted choice field's.
    """

    name: str
    model: type[BaseModel]
    overall: Template
    inputs: Inputs
    shot: Template | None = None
    shots_pool: tuple[Shot, ...] = ()
    feedback: Template | None = None
    reward: str | None = None
    reward_key: str = "reward"
    scale: Mapping[str, float] = field(default_factory=dict)
    pair: PairSpec | None = None
    weights: Mapping[str, float] = field(default_factory=dict)
    normalize: bool = False
    scales: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: Extra text the template's ``{$fields}`` placeholder shows (set by ``describe``).
    source: str = ""
    #: Whether ``meta[reward_key]`` holds the value a verdict names where no probabilities
    #: give an expected value (sampling; an engine without log-probabilities). The built-in
    #: judges' keys name an expectation (``expected_score``), so they carry only that.
    named_reward: bool = True

    def __post_init__(self) -> None:
        if not self.fields:
            raise InputError(f"judge {self.name}: the verdict has no fields")
        _check_numbers(self.scale, "scale")
        self._check_reward()
        self._check_weights()
        if self.pair is not None:
            self.pair.check(self)

    def _check_reward(self) -> None:
        """The reward names a field with a value; ``scale`` numbers it when it is a choice
        (and would have no effect otherwise)."""
        kind = None
        if self.reward is not None:
            if self.reward not in self.keys:
                raise InputError(f"reward {self.reward!r}: no such field ({', '.join(self.keys)})")
            spec = self.field_named(self.reward)
            kind = spec.kind
            if kind == "text":
                raise InputError(f"reward {self.reward!r}: a text field has no value to reward")
            if kind == "choice":
                _check_covers(spec, self.scale, f"reward {self.reward!r}")
        if self.scale and kind != "choice":
            raise InputError(
                "scale numbers the choices of a choice reward field; it has no effect "
                "without one (name that field with reward=...)"
            )

    def _check_weights(self) -> None:
        """A combined reward: each weight a positive finite number on a field with a value,
        each weighted choice field numbered by ``scales`` (and ``scales`` nothing else)."""
        if not isinstance(self.weights, Mapping) or not isinstance(self.scales, Mapping):
            raise InputError("reward weights and scales must map field names to numbers")
        if self.weights and self.reward is not None:
            raise InputError('give reward = "<field>" or reward weights, not both')
        if not isinstance(self.normalize, bool):
            raise InputError(f"reward normalize must be true or false, got {self.normalize!r}")
        for key in self.scales:
            if key not in self.weights:
                raise InputError(f"scores of field {key!r}: it has no reward weight to number")
        for key, weight in self.weights.items():
            where = f"reward weights: {key!r}"
            if key not in self.keys:
                raise InputError(f"{where}: no such field ({', '.join(self.keys)})")
            if not _finite(weight) or weight <= 0:
                raise InputError(f"{where}: {weight!r} is not a finite number above 0")
            spec = self.field_named(key)
            if spec.kind == "text":
                raise InputError(f"{where}: a text field has no value to weight")
            if spec.kind == "choice":
                _check_numbers(self.scales.get(key, {}), f"scores of field {key!r}")
                _check_covers(spec, self.scales.get(key, {}), where)
            low, high = self.value_range(spec)
            if self.normalize and low == high:
                raise InputError(
                    f"{where}: every value is {low}, so normalize cannot map it to 0-1"
                )

    def __str__(self) -> str:
        return self.name

    # -- the verdict's fields --------------------------------------------------------------

    @cached_property
    def fields(self) -> tuple[FieldSpec, ...]:
        """Every field, in the order the program writes them."""
        return model_fields(self.model)

    @property
    def keys(self) -> list[str]:
        """The public JSON keys of a verdict, in order."""
        return [f.key for f in self.fields]

    @property
    def text_fields(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.kind == "text"]

    def field_named(self, key: str) -> FieldSpec:
        """The field whose public key is ``key``, else whose Python attribute is."""
        found = [f for f in self.fields if f.key == key] or [
            f for f in self.fields if f.name == key
        ]
        if found:
            return found[0]
        raise InputError(f"judge {self.name}: no field {key!r}; fields: {', '.join(self.keys)}")

    # -- validation and the public form ---------------------------------------------------

    def validate(self, data: str | Mapping[str, Any]) -> BaseModel:
        """Parse and validate a verdict (JSON text or dict); raises pydantic's ValidationError."""
        if isinstance(data, str):
            return self.model.model_validate_json(data)
        return self.model.model_validate(data)

    def public(self, verdict: BaseModel) -> dict[str, Any]:
        """The verdict as a dict with the public keys, in the public order."""
        return verdict.model_dump(mode="json", by_alias=True)

    def parse(self, text: str) -> tuple[dict[str, Any], list[str]]:
        """A program's verdict text validated; text fields over ``MAX_FIELD_CHARS`` are
        cut there rather than failing the verdict, and their keys returned."""
        data = json.loads(text)
        texts = {f.key for f in self.text_fields}
        cut = [k for k, v in data.items() if k in texts and len(v) > MAX_FIELD_CHARS]
        for key in cut:
            data[key] = data[key][:MAX_FIELD_CHARS]
        return self.public(self.validate(data)), cut

    # -- inputs and prompt ----------------------------------------------------------------

    def example_fields(self, example: Mapping[str, Any], where: str = "example") -> dict[str, str]:
        """The program arguments of one example; an ``InputError`` naming what is wrong."""
        if not isinstance(example, Mapping):
            raise InputError(f"{where}: expected an object, got {type(example).__name__}")
        return self.inputs.fields(example, where)

    def render_feedback(self, feedback: Mapping[str, Any]) -> str:
        """A shot's verdict as the program would write it, or through the feedback template."""
        ordered = {key: feedback[key] for key in self.keys}
        if self.feedback is None:
            return json.dumps(ordered, ensure_ascii=False)
        return self.feedback.render({feedback_key(k): str(v) for k, v in ordered.items()})

    def render_shots(self, shots: Sequence[Mapping[str, Any]]) -> str:
        """All shots rendered in order, numbered from 1."""
        if not shots:
            return ""
        if self.shot is None:
            raise InputError(f"judge {self.name}: has no shot template to show shots with")
        template, parts = self.shot, []
        for i, shot in enumerate(shots, start=1):
            values = self.example_fields(shot, f"shot {shot.get('id', i)}")
            values["index"] = str(i)
            values["feedback"] = self.render_feedback(shot["feedback"])
            parts.append(template.render(values))
        return "".join(parts)

    def prompt(self, shots: Sequence[Mapping[str, Any]]) -> Template:
        """The overall template with the shots filled in: a constant prefix, then slots."""
        return self.overall.fill({"shots": self.render_shots(shots), "fields": self.describe()})

    def describe(self) -> str:
        """One line per field: key, kind and values, description (for ``{$fields}``)."""
        lines = []
        for spec in self.fields:
            values = f" ({' / '.join(spec.values)})" if spec.kind == "choice" else ""
            if spec.kind == "int":
                values = f" (an integer from {spec.values[0]} to {spec.values[-1]})"
            about = f": {spec.description}" if spec.description else ""
            key = json.dumps(spec.key, ensure_ascii=False)  # as the verdict JSON writes it
            lines.append(f"- {key}{values or f' ({spec.kind})'}{about}")
        return "\n".join(lines)

    # -- hosted engines -------------------------------------------------------------------

    def json_schema(self) -> dict[str, Any]:
        """The verdict's JSON schema with public keys and ``additionalProperties: false``."""
        schema = self.model.model_json_schema(by_alias=True)
        _forbid_extra(schema)
        return schema

    def grammar_schema(self) -> dict[str, Any]:
        """The schema for servers that compile it into a grammar (llama.cpp, vLLM): no
        ``maxLength`` (unrolled into nested rules, it is refused or compiles for seconds)
        and integers as an ``enum`` (llama.cpp's converter let integer bounds through).
        Validation still enforces both."""
        schema = _drop_key(self.json_schema(), "maxLength")
        for spec in self.fields:
            if spec.kind == "int":
                old = schema["properties"][spec.key]
                schema["properties"][spec.key] = {
                    "title": old.get("title", spec.key),
                    "enum": list(spec.labels),
                }
        return schema

    # -- numbers from a verdict -----------------------------------------------------------

    @property
    def has_reward(self) -> bool:
        """Whether a verdict has a reward: one field's (``reward``) or combined (``weights``)."""
        return self.reward is not None or bool(self.weights)

    def numbers(self, spec: FieldSpec) -> Mapping[str, float]:
        """A choice field's number per choice: ``scale`` for the reward field, else ``scales``."""
        return self.scale if spec.key == self.reward else self.scales.get(spec.key, {})

    def number(self, spec: FieldSpec, value: str) -> float:
        """A field's value as a number: ints and bools as themselves, choices by ``scale``."""
        if spec.kind == "choice":
            return float(self.numbers(spec)[value])
        return spec.number(value)

    def value_range(self, spec: FieldSpec) -> tuple[float, float]:
        """The lowest and highest number a field's values take (``normalize`` maps it to 0-1)."""
        values = [self.number(spec, text) for text in spec.texts]
        return min(values), max(values)

    def margin(self, choice: str) -> float:
        """A pair judge's choice as a signed preference for the first reply: half its number
        less its swapped reading's (A++ → +2 for the built-in judge; a tie → 0)."""
        if self.pair is None:
            raise InputError(f"judge {self.name}: compares no two replies")
        return (self.scale[choice] - self.scale[self.pair.swapped[choice]]) / 2

    def expected(self, spec: FieldSpec, distribution: Mapping[str, float]) -> float:
        """A numeric field's expected value under a distribution over its values."""
        total = sum(distribution.values())
        mean = sum(self.number(spec, v) * p for v, p in distribution.items()) / total
        return round(mean, DECIMALS)

    def probability_meta(self, distributions: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
        """The meta entries of a greedy verdict's value distributions (by field key, each
        over the field's values as the verdict JSON spells them: ``FieldSpec.values``).

        ``probabilities``: the reward field's distribution; ``field_probabilities``: every
        selectable field's, when there are others; ``expected``: each int / bool field's
        expected value, when there are others than the reward; and the reward's expected
        value under ``reward_key``. Every distribution is keyed by value text
        (``FieldSpec.texts``: a choice as written in the definition, not JSON-escaped).
        """
        dists = {
            key: {self.field_named(key).text_of(v): p for v, p in dist.items()}
            for key, dist in distributions.items()
        }
        out: dict[str, Any] = {}
        if self.reward is not None and self.reward in dists:
            out["probabilities"] = dists[self.reward]
        if set(dists) - {self.reward}:
            out["field_probabilities"] = dists
        numeric = {
            key: self.expected(self.field_named(key), dist)
            for key, dist in dists.items()
            if self.field_named(key).kind in ("int", "bool") or key in self.scales
        }
        if set(numeric) - {self.reward}:
            out["expected"] = numeric
        if self.reward is not None and self.reward in dists:
            out[self.reward_key] = self.expected(self.field_named(self.reward), dists[self.reward])
        if self.weights and set(self.weights) <= set(dists):
            out[self.reward_key], out["reward_terms"] = self.combined({}, dists)
        return out

    def reward_meta(self, verdict: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
        """``{reward_key: value}`` for a verdict whose meta has no expected reward (it was
        sampled, or its engine gave no probabilities): the value the verdict names, through
        ``scale``; a combined reward adds its ``reward_terms``. Empty without a reward,
        with one in ``meta`` already, or where ``named_reward`` is off (the built-ins)."""
        if not self.has_reward or not self.named_reward or meta.get(self.reward_key) is not None:
            return {}
        if self.weights:
            reward, terms = self.combined(verdict, meta.get("field_probabilities") or {})
            return {self.reward_key: reward, "reward_terms": terms}
        return {self.reward_key: self.reward_value(verdict, meta)}

    def reward_value(self, verdict: Mapping[str, Any], meta: Mapping[str, Any]) -> float:
        """The verdict's reward: its expected value over the reported probabilities when
        there are any, else the value the verdict names (a combined reward: per field)."""
        if not self.has_reward:
            raise InputError(f'judge {self.name}: names no reward field (reward = "<field>")')
        if meta.get(self.reward_key) is not None:
            return float(meta[self.reward_key])
        if self.reward is None:
            return self.combined(verdict, meta.get("field_probabilities") or {})[0]
        spec = self.field_named(self.reward)
        probabilities = meta.get("probabilities")
        if probabilities and sum(probabilities.values()) > 0:
            return self.expected(spec, {str(k): p for k, p in probabilities.items()})
        return self.number(spec, _spelled_value(verdict[spec.key]))

    def combined(
        self, verdict: Mapping[str, Any], distributions: Mapping[str, Mapping[str, float]]
    ) -> tuple[float, dict[str, float]]:
        """The weighted reward and its terms: each weighted field's expected value under its
        distribution (else the value the verdict names), mapped to 0-1 with ``normalize``."""
        terms = {}
        for key in self.weights:
            spec = self.field_named(key)
            dist = distributions.get(spec.key)
            if dist and sum(dist.values()) > 0:
                value = self.expected(spec, {str(k): p for k, p in dist.items()})
            else:
                value = self.number(spec, _spelled_value(verdict[spec.key]))
            if self.normalize:
                low, high = self.value_range(spec)
                value = (value - low) / (high - low)
            terms[key] = round(value, DECIMALS)
        reward = sum(self.weights[key] * value for key, value in terms.items())
        return round(reward, DECIMALS), terms

    # -- identity -------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """A digest of everything in the definition that changes a verdict: schema,
        templates, shots, reward; part of cache keys and of ``meta.judge``."""
        return self._digest

    @cached_property
    def _digest(self) -> str:
        parts = {
            "name": self.name,
            "schema": self.json_schema(),
            "overall": _segments(self.overall),
            "shot": _segments(self.shot),
            "feedback": _segments(self.feedback),
            "shots": list(self.shots_pool),
            "reward": [self.reward, self.reward_key, dict(self.scale)],
            "pair": None if self.pair is None else [self.pair.sides, dict(self.pair.swapped)],
        }
        if self.weights:  # absent otherwise, so that a one-field judge keeps its identity
            scales = {key: dict(numbers) for key, numbers in self.scales.items()}
            parts["weights"] = [dict(self.weights), self.normalize, scales]
        text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_numbers(numbers: Any, what: str) -> None:
    """``numbers`` maps each choice to a finite number (refused now, not while judging)."""
    if not isinstance(numbers, Mapping):
        raise InputError(f"{what} must map choices to numbers, got {type(numbers).__name__}")
    for choice, number in numbers.items():
        if not isinstance(choice, str):
            raise InputError(f"{what}: key {choice!r} is not a choice (text)")
        if not _finite(number):
            raise InputError(f"{what}: {choice!r}: {number!r} is not a finite number")


def _check_covers(spec: FieldSpec, numbers: Mapping[str, float], where: str) -> None:
    """``numbers`` numbers each choice of a choice field, by its text, and nothing else."""
    missing = [text for text in spec.texts if text not in numbers]
    extra = [choice for choice in numbers if choice not in spec.texts]
    if missing or extra:
        problem = (
            f"no number for choice {missing[0]!r}"
            if missing
            else f"{extra[0]!r} is not one of its choices"
        )
        raise InputError(
            f"{where}: a choice field needs a number for each of its choices "
            f"(scores = [...]): {problem}"
        )


def _finite(value: Any) -> bool:
    """A finite int or float (not a bool, which is an int to Python)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _spelled_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _segments(template: Template | None) -> list[Any] | None:
    if template is None:
        return None
    return [{"slot": s.key} if isinstance(s, Slot) else s for s in template.segments]


def feedback_key(public_key: str) -> str:
    """A verdict key as a placeholder name: ``analysis of A`` → ``analysis_of_A``,
    ``reason of A>B`` → ``reason_of_A_gt_B`` (``=`` → ``eq``)."""
    spelled = public_key.replace(">", " gt ").replace("=", " eq ")
    return "_".join(spelled.split())


def _forbid_extra(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object":
            node["additionalProperties"] = False
        for value in node.values():
            _forbid_extra(value)
    elif isinstance(node, list):
        for value in node:
            _forbid_extra(value)


def _drop_key(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return {k: _drop_key(v, key) for k, v in node.items() if k != key}
    if isinstance(node, list):
        return [_drop_key(v, key) for v in node]
    return node
