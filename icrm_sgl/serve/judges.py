"""The ICRM instances a server judges with: one per judge, all on one engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from icrm_sgl.judges import BUILTIN_NAMES, Judge
from icrm_sgl.options import Settings


@dataclass
class Judges:
    """``ICRM`` per judge name; the first one owns the engine, the others borrow it."""

    by_mode: dict[str, Any]
    _settled: bool = field(default=False, repr=False)

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
        from icrm_sgl.icrm import ICRM  # imports sglang: seconds, so only when serving

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
        """The served judges' definitions, in the order examples are matched to them."""
        return tuple(model.definition for model in self.by_mode.values())

    def definition(self, name: str) -> Judge:
        """The definition of the served judge called ``name``."""
        return self.by_mode[name].definition

    @property
    def reward_judge(self) -> Judge:
        """The judge ``/get_reward`` uses: the first that judges one response, else the first."""
        single = [judge for judge in self.modes if judge.pair is None]
        return (single or list(self.modes))[0]

    def describe(self) -> dict[str, Any]:
        """Engine, model and modes, for /health."""
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
