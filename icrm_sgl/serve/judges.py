"""The ICRM instances a server judges with: one per judging mode, all on one engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RM_TYPES = ("individual", "pairwise")


@dataclass
class Judges:
    """``ICRM`` per judging mode; the first one owns the engine, the others borrow it."""

    by_mode: dict[str, Any]
    _settled: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, modes: tuple[str, ...], **icrm_options: Any) -> Judges:
        """Build the engine once (model load, or server launch) and an ICRM per mode on it."""
        from icrm_sgl.icrm import ICRM  # imports sglang: seconds, so only when serving

        first = ICRM(rm_type=modes[0], **icrm_options)
        by_mode = {modes[0]: first}
        for mode in modes[1:]:
            by_mode[mode] = ICRM(rm_type=mode, backend=first.backend, **icrm_options)
        return cls(by_mode)

    def check(self, gen: dict[str, Any]) -> None:
        """Raise ``InputError`` now for generation settings every batch would reject."""
        for judge in self.by_mode.values():
            list(judge.judge_batch([], **gen))

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.by_mode)

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
