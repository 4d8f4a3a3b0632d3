"""A panel file (TOML): members, each a judge on its own engine, and how they combine.

Everything a panel needs that is not an engine is read and checked here, before any
engine loads: the members' judges (built-in names, or rubric paths relative to the panel
file), their engines' names and options, their weights, and that every member judges the
same kind of thing (one reply, or two). Each problem is one ``InputError`` line naming
the panel file and the member (``panel P: member 2: ...``, members counted from 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from icrm_sgl.errors import InputError
from icrm_sgl.judges import BUILTIN_NAMES, Judge, as_judge
from icrm_sgl.judges.supply import two_replies
from icrm_sgl.judging.settings import EngineSettings, check_engine_key
from icrm_sgl.plumbing.files import read_toml

Combine = Literal["mean", "vote"]
#: The engine's launch settings a member's ``options`` may hold, as ``-E`` takes them
#: (``num_workers``, ``dtype`` …): the model and the seed are set elsewhere.
LAUNCH_KEYS = frozenset(EngineSettings.model_fields) - {"name", "options", "model_name", "seed"}


class MemberEntry(BaseModel):
    """One ``[[members]]`` table: a judge (built-in name or rubric path), its engine, model,
    server (``base_url`` or ``endpoint``), the engine's own options (what ``-E`` takes) and
    the member's weight in the panel."""

    model_config = ConfigDict(extra="forbid", strict=True)

    judge: str
    engine: str = "local"
    model: str | None = None
    endpoint: str | None = Field(None, validation_alias=AliasChoices("endpoint", "base_url"))
    options: dict[str, Any] = Field(default_factory=dict)
    weight: float = 1.0

    @field_validator("weight")
    @classmethod
    def _positive_finite(cls, weight: float) -> float:
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"{weight!r} is not a finite number above 0")
        return weight


class PanelFile(BaseModel):
    """The top level of a panel file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = None
    combine: Combine = "mean"
    members: list[MemberEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Member:
    """A checked member: its number in the file (from 1), judge, engine settings and weight."""

    number: int
    judge: Judge
    engine: EngineSettings
    weight: float
    #: The rubric file the judge was read from (None for a built-in judge).
    rubric: Path | None = None

    @property
    def label(self) -> str:
        """``member 2 (mtbench_pairwise on openai)``: how messages name it."""
        return f"member {self.number} ({self.judge.name} on {self.engine.name})"


@dataclass(frozen=True)
class PanelSpec:
    """A panel file once checked: its name, combination rule and members."""

    name: str
    combine: Combine
    members: tuple[Member, ...]
    source: Path | None = None

    @property
    def pairs(self) -> bool:
        """Whether the members compare two replies (else each judges one)."""
        return self.members[0].judge.pair is not None

    @property
    def judges(self) -> tuple[Judge, ...]:
        return tuple(m.judge for m in self.members)

    def example(self, build: Callable[[Judge], Mapping[str, Any]]) -> dict[str, Any]:
        """One example every member reads: ``build``'s example for each member's judge
        (what a consumer supplies, ``judges.supply``), merged; an ``InputError`` when two
        members need one key to hold different values (no engine needed to tell)."""
        merged: dict[str, Any] = {}
        setter: dict[str, Member] = {}
        for member in self.members:
            for key, value in build(member.judge).items():
                if key in merged and merged[key] != value:
                    raise InputError(
                        f"{member.label} reads {key!r} differently from {setter[key].label}"
                    )
                merged[key] = value
                setter.setdefault(key, member)
        return merged

    def sources(self) -> list[Path]:
        """The panel file and every rubric file it names: what an output may not replace."""
        from icrm_sgl.judges.rubric import rubric_sources

        found: list[Path] = [] if self.source is None else [self.source]
        for member in self.members:
            if member.rubric is not None:
                found += [member.rubric, *rubric_sources(member.rubric)]
        return found


def load_panel(path: str | Path) -> PanelSpec:
    """A panel from its TOML file; an ``InputError`` naming the file and the member."""
    path = Path(path)
    where = f"panel {path}"
    entries = _checked_file(read_toml(path, "panel"), where)
    members = tuple(
        _member(i, entry, path, where) for i, entry in enumerate(entries.members, start=1)
    )
    spec = PanelSpec(entries.name or path.stem, entries.combine, members, path)
    check_panel(spec, where)
    return spec


def check_panel(spec: PanelSpec, where: str) -> None:
    """A panel whose members can be combined: at least one, each with a reward, all
    judging one reply or all two (reading a reply's input alike), and (``vote`` on one
    reply) rewards with the same values."""
    if not spec.members:
        raise InputError(f"{where}: the panel has no members ([[members]] tables)")
    first = spec.members[0]
    for member in spec.members:
        if not member.judge.has_reward:
            raise InputError(f"{where}: {member.label}: judge names no reward")
        if (member.judge.pair is None) != (first.judge.pair is None):
            kinds = {True: "two replies", False: "one reply"}
            raise InputError(
                f"{where}: {member.label} judges {kinds[member.judge.pair is not None]} but "
                f"{first.label} judges {kinds[first.judge.pair is not None]}: a panel's members "
                "judge the same kind of example"
            )
        low, high = reward_range(member.judge)
        if low == high:
            raise InputError(f"{where}: {member.label}: its reward takes one value only")
        if spec.combine == "vote" and not spec.pairs:
            _check_same_values(first, member, where)
    if spec.pairs:
        _check_same_replies(spec, where)


def reward_range(judge: Judge) -> tuple[float, float]:
    """The lowest and highest reward a judge gives: its reward field's range (a judge of
    two replies: its margin, -M..M), or a combined reward's weighted ranges."""
    if judge.pair is not None:
        top = max(judge.margin(choice) for choice in judge.scale)
        return -top, top
    if judge.reward is not None:
        return judge.value_range(judge.field_named(judge.reward))
    low = high = 0.0
    for key, weight in judge.weights.items():
        lo, hi = (0.0, 1.0) if judge.normalize else judge.value_range(judge.field_named(key))
        low, high = low + weight * lo, high + weight * hi
    return low, high


def _checked_file(data: dict[str, Any], where: str) -> PanelFile:
    try:
        return PanelFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = list(error["loc"])
        place = "panel"
        if loc[:1] == ["members"] and len(loc) > 1 and isinstance(loc[1], int):
            rest = ".".join(str(p) for p in loc[2:])
            place = f"member {loc[1] + 1}" + (f": {rest}" if rest else "")
        elif loc:
            place = ".".join(str(p) for p in loc)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        elif error["type"] == "model_type":
            message = "expected a table ([[members]])"
        raise InputError(f"{where}: {place}: {message}") from None


def _member(number: int, entry: MemberEntry, panel: Path, where: str) -> Member:
    """A member's judge resolved (a rubric path from the panel's folder) and its engine
    settings made, each problem naming the member."""
    place = f"{where}: member {number}"
    from icrm_sgl.engines import engine_names

    if entry.engine not in engine_names():
        raise InputError(
            f"{place}: unknown engine {entry.engine!r}: choose one of {', '.join(engine_names())}"
        )
    try:
        for key in entry.options:
            check_engine_key(key)
        reference = _judge_reference(entry.judge, panel)
        judge = as_judge(reference)
        options = {**entry.options, **({"endpoint": entry.endpoint} if entry.endpoint else {})}
        launch = {key: options.pop(key) for key in LAUNCH_KEYS & set(options)}
        engine = EngineSettings(
            name=entry.engine, model_name=entry.model, **launch, options=options
        )
    except InputError as exc:
        raise InputError(f"{place}: {exc}") from None
    rubric = reference if isinstance(reference, Path) else None
    return Member(number, judge, engine, entry.weight, rubric)


def _judge_reference(judge: str, panel: Path) -> str | Path:
    """A built-in judge's name as it is; a rubric's path relative to the panel's folder
    (an absolute path stays itself), when it names a ``.toml`` file other than the panel."""
    if judge in BUILTIN_NAMES:
        return judge
    if not judge.endswith(".toml"):
        raise InputError(
            f"unknown judge {judge!r}: expected one of {', '.join(BUILTIN_NAMES)} or a "
            "rubric .toml file (relative to the panel file)"
        )
    path = panel.parent / judge
    if path.resolve() == panel.resolve():
        raise InputError(f"judge {judge!r} is this panel file, not a rubric")
    return path


def _check_same_replies(spec: PanelSpec, where: str) -> None:
    """Members of two replies that share a reply's input must read it alike (both text,
    or both a whole conversation): no example could suit both."""
    turns = [{"role": "user", "content": "?"}]
    try:
        spec.example(lambda judge: two_replies(judge, turns, ("A", "B"), {}, where))
    except InputError as exc:
        raise InputError(
            f"{where}: {exc} (one reads the reply as text, the other as a conversation)"
        ) from None


def _check_same_values(first: Member, member: Member, where: str) -> None:
    """``vote`` on one reply counts the values the members' reward fields name: every
    member needs one reward field with the same values, numbered the same."""
    if first.judge.reward is None or member.judge.reward is None:
        raise InputError(
            f"{where}: {member.label}: vote needs each member's reward to be one field "
            '(combine = "mean" weighs combined rewards)'
        )
    if _numbered(first.judge) != _numbered(member.judge):
        raise InputError(
            f"{where}: {member.label}: vote needs the same reward values in every member "
            f"({first.label}'s: {', '.join(_numbered(first.judge))})"
        )


def _numbered(judge: Judge) -> dict[str, float]:
    """A judge's reward field's values (as the verdict spells them) and their numbers."""
    spec = judge.field_named(str(judge.reward))
    return {text: judge.number(spec, text) for text in spec.texts}
