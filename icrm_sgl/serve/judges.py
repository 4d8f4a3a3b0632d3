"""What a server judges with: an ``ICRM`` per judge, all on one engine, or one panel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from icrm_sgl.judges import BUILTIN_NAMES, Judge
from icrm_sgl.judging.settings import Settings
from icrm_sgl.panel.spec import PanelSpec
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.serve.payloads import Parsed, RewardRequest, parse_examples, reward_examples


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

    def parse(self, data: Any) -> Parsed:
        """``/v1/judge``'s examples, each matched to the served judge it is for; for a
        panel, read by every member (a problem of any member is the example's)."""
        if self.panel is None:
            return parse_examples(data, self.modes)
        found = [parse_examples(data, (judge,)) for judge in self.panel.judges]
        merged = [self._merged([p.examples[i] for p in found]) for i in range(len(found[0].ids))]
        return Parsed(found[0].single, [self.panel.name] * len(merged), merged, found[0].ids)

    def reward_examples(self, request: RewardRequest) -> tuple[str, list[dict[str, Any]]]:
        """``/get_reward``'s queries as the examples of the judge that rewards them (a
        panel: every member's inputs), with that judge's name."""
        if self.panel is None:
            judge = self.reward_judge
            return judge.name, reward_examples(request, judge)
        found = [reward_examples(request, judge) for judge in self.panel.judges]
        return self.panel.name, [self._merged(list(each)) for each in zip(*found, strict=True)]

    def _merged(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """One example from what each panel member reads (members in order)."""
        by_judge = dict(zip(map(id, self.panel.judges), examples, strict=True))
        return self.panel.example(lambda judge: by_judge[id(judge)])

    def reward(self, rm_type: str, result: Judgement) -> float | None:
        """A judged example's reward: the panel's, or its judge's (None without one)."""
        if result.verdict is None:
            return None
        if self.panel is not None:
            return float(result.meta["reward"])
        judge = self.definition(rm_type)
        return judge.reward_value(result.verdict, result.meta) if judge.has_reward else None

    def definition(self, name: str) -> Judge:
        """The definition of the served judge called ``name``."""
        return self.by_mode[name].definition

    @property
    def reward_judge(self) -> Judge:
        """The judge ``/get_reward`` uses: the first that judges one response, else the first."""
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
