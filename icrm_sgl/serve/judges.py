"""What a server judges with: an ``ICRM`` per judge, all on one engine, or one panel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from icrm_sgl.errors import InputError
from icrm_sgl.judges import BUILTIN_NAMES, Judge
from icrm_sgl.judging.pair_judging import PairJudgement, judge_pairs
from icrm_sgl.judging.settings import Settings
from icrm_sgl.panel.spec import PanelSpec
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.serve.payloads import (
    ONE_REPLY,
    Parsed,
    Problem,
    RequestRejected,
    RewardRequest,
    parse_examples,
    reward_examples,
)


@dataclass(frozen=True)
class BothOrders:
    """A judge of two replies run as ``score --both-orders`` runs it: each example judged
    A/B and B/A and reconciled (``judge_pairs``), two engine calls."""

    judge_batch: Callable[..., Iterator[Any]]
    calls: int = 2


@dataclass
class Judges:
    """``ICRM`` per judge name, the first one owning the engine and the others borrowing
    it; or one ``Panel`` (``panel``), whose members each read every example."""

    by_mode: dict[str, Any]
    panel: Any = None
    _settled: bool = field(default=False, repr=False)

    @classmethod
    def open_panel(
        cls, spec: PanelSpec, settings: Settings | None = None, require_all: bool = False
    ) -> Judges:
        """A server of one panel, its members sharing ``settings``' judging and cache."""
        from icrm_sgl.panel.panel import Panel  # imports sglang: seconds, so only when serving

        panel = Panel.from_settings(spec, settings or Settings(), require_all)
        return cls({panel.name: panel}, panel)

    @classmethod
    def open(
        cls,
        judges: tuple[Judge | str, ...] = BUILTIN_NAMES,
        settings: Settings | None = None,
        **icrm_options: Any,
    ) -> Judges:
        """Build the engine once (model load, or server launch) and an ICRM per judge on it:
        a built-in judge's name, or your own judge (a ``Judge`` or a rubric path). The
        settings groups, or ``ICRM``'s keywords (``backend=`` among them) to make them."""
        from icrm_sgl.judging.icrm import ICRM  # imports sglang: seconds, so only when serving

        backend = icrm_options.pop("backend", None)
        settings = settings or Settings.from_flat(icrm_options)
        first = ICRM.from_settings(*settings.with_judge(judges[0]), backend=backend)
        by_mode = {first.rm_type: first}
        for judge in judges[1:]:
            model = ICRM.from_settings(*settings.with_judge(judge), backend=first.backend)
            by_mode[model.rm_type] = model
        return cls(by_mode)

    def check(self, gen: dict[str, Any]) -> None:
        """Raise ``InputError`` now for generation settings every batch would reject."""
        for judge in self.by_mode.values():
            list(judge.judge_batch([], **gen))

    @property
    def modes(self) -> tuple[Judge, ...]:
        """The served judges' definitions, in the order examples are matched to them (a
        panel's: its members')."""
        if self.panel is not None:
            return tuple(self.panel.judges)
        return tuple(model.definition for model in self.by_mode.values())

    def runners(self, both_orders: bool = False) -> dict[str, Any]:
        """What the batcher judges each mode's examples with: its ``ICRM`` (the panel);
        with ``both_orders``, a judge of two replies in both orders (``BothOrders``)."""
        if not both_orders:
            return dict(self.by_mode)
        if self.panel is not None:
            paired = BothOrders(partial(self.panel.judge_pairs, both_orders=True))
            return {self.panel.name: paired if self.panel.spec.pairs else self.panel}
        return {
            name: BothOrders(partial(judge_pairs, model, both_orders=True))
            if model.definition.pair is not None
            else model
            for name, model in self.by_mode.items()
        }

    def parse(self, data: Any, both_orders: bool = False) -> Parsed:
        """``/v1/judge``'s examples, each matched to the served judge it is for; for a
        panel, read by every member (a problem of any member is the example's). With
        ``both_orders`` an example of one reply is a problem (as ``score`` refuses it)."""
        if self.panel is None:
            return parse_examples(data, self.modes, both_orders)
        found = [parse_examples(data, (judge,), both_orders) for judge in self.panel.judges]
        each = [[p.examples[i] for p in found] for i in range(len(found[0].ids))]
        merged = self._merged(each, "example")
        return Parsed(found[0].single, [self.panel.name] * len(merged), merged, found[0].ids)

    def reward_examples(
        self, request: RewardRequest, both_orders: bool = False
    ) -> tuple[str, list[dict[str, Any]]]:
        """``/get_reward``'s queries as the examples of the judge that rewards them
        (``reward_judge``; a panel: every member's inputs), with that judge's name."""
        if self.panel is None:
            judge = self.reward_judge(both_orders)
            return judge.name, reward_examples(request, judge)
        if both_orders and not self.panel.spec.pairs:
            raise RequestRejected([Problem(None, None, ONE_REPLY)])
        found = [reward_examples(request, judge) for judge in self.panel.judges]
        return self.panel.name, self._merged([list(ex) for ex in zip(*found, strict=True)], "query")

    def _merged(self, each: list[list[dict[str, Any]]], where: str) -> list[dict[str, Any]]:
        """One example per entry of ``each`` (what every member reads, members in order);
        a key two members need to hold different values is a problem naming it."""
        merged, problems = [], []
        for i, examples in enumerate(each):
            try:
                merged.append(self._merged_one(examples))
            except InputError as exc:
                keys = dict.fromkeys(key for example in examples for key in example)
                key = next((k for k in keys if f"reads {k!r} " in str(exc)), None)
                problems.append(Problem(i, key, f"{where} {i}: {exc}"))
        if problems:
            raise RequestRejected(problems)
        return merged

    def _merged_one(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        by_judge = dict(zip(map(id, self.panel.judges), examples, strict=True))
        return self.panel.example(lambda judge: by_judge[id(judge)])

    def reward(self, rm_type: str, result: Judgement | PairJudgement) -> float | None:
        """A judged example's reward: a pair's reconciled expected margin (both orders),
        the panel's, or its judge's (None without one)."""
        if isinstance(result, PairJudgement):
            return float(result.result()["expected_margin"]) if result.ok else None
        if result.verdict is None:
            return None
        if self.panel is not None:
            return float(result.meta["reward"])
        judge = self.definition(rm_type)
        return judge.reward_value(result.verdict, result.meta) if judge.has_reward else None

    def definition(self, name: str) -> Judge:
        """The definition of the served judge called ``name``."""
        return self.by_mode[name].definition

    def reward_judge(self, both_orders: bool = False) -> Judge:
        """The judge ``/get_reward`` uses: the first that judges one response, else the
        first; with ``both_orders`` the first of two replies (with none, every request is
        refused, as ``score --both-orders`` refuses examples of one reply)."""
        pairs = [judge for judge in self.modes if judge.pair is not None]
        if both_orders:
            if not pairs:
                raise RequestRejected([Problem(None, None, ONE_REPLY)])
            return pairs[0]
        single = [judge for judge in self.modes if judge.pair is None]
        return (single or list(self.modes))[0]

    def describe(self) -> dict[str, Any]:
        """Engine, model and modes, for /health (a panel: its first member's, and each
        member's judge, engine and model)."""
        if self.panel is not None:
            members = [
                {"judge": m.rm_type, "engine": m.engine, "model": m.model_name}
                for m in self.panel.models
            ]
            shown = {"engine": members[0]["engine"], "model": members[0]["model"]}
            return {**shown, "modes": list(self.by_mode), "members": members}
        first = next(iter(self.by_mode.values()))
        return {"engine": first.engine, "model": first.model_name, "modes": list(self.by_mode)}

    def close(self) -> None:
        """Borrowers first, then the owner (frees the model, stops a launched server); once."""
        if not self._settled:
            self._settled = True
            for judge in reversed(list(self.by_mode.values())):
                judge.close()

    def leave_open(self) -> None:
        """Never close: the engine is still running a batch and the process is exiting."""
        self._settled = True
