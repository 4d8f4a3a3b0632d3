"""``Panel``: several judges, each an ``ICRM`` on its own engine, behind one reward.

Each member is an ordinary ``ICRM`` (its own verdict cache keys, its own retries, the one
reconciler of two orders); members on the same engine, model and options share one
backend, so they share its batches and prefix cache. A batch runs every member at once,
a thread per member, so the panel takes about as long as its slowest member.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from icrm_sgl.engines.hosted.preflight import preflight
from icrm_sgl.errors import EngineError, InputError, VerdictError
from icrm_sgl.judges import Judge
from icrm_sgl.judging.ranking import WINS
from icrm_sgl.judging.settings import CacheSettings, JudgingSettings, Settings
from icrm_sgl.panel import combine
from icrm_sgl.panel.spec import Member, PanelSpec, load_panel
from icrm_sgl.plumbing.arguments import check_examples
from icrm_sgl.plumbing.judgement import Judgement

#: ``ICRM`` keywords that each member has from the panel file.
_MEMBERS_OWN = frozenset(
    {"judge", "rm_type", "template_path", "shot_template_path", "feedback_template_path"}
    | {"shots_pool_path", "engine", "model_name", "backend"}
)
#: The keywords a panel shares with every member: the judging and cache settings.
_SHARED = (set(JudgingSettings.model_fields) | set(CacheSettings.model_fields)) - _MEMBERS_OWN


class Panel:
    """A panel of judges (see ``icrm_sgl.panel.spec`` for the file): ``judge`` /
    ``judge_batch`` give one ``Judgement`` per example whose verdict is the panel's
    (``reward``, and ``decision`` where the panel decides) and whose meta keeps every
    member's verdict; ``judge_pairs`` judges two-reply examples in both orders.

    ``panel`` is a panel file's path or a ``PanelSpec``; ``require_all`` makes an example
    that any member fails an error (else the reward comes from the others, and
    ``meta.members_failed`` names the rest). The other keywords are ``ICRM``'s judging
    and cache settings, shared by every member (``num_shots=1``, ``use_cache=True``).
    """

    def __init__(
        self, panel: str | Path | PanelSpec, require_all: bool = False, **icrm_options: Any
    ) -> None:
        spec = panel if isinstance(panel, PanelSpec) else load_panel(panel)
        for key in icrm_options:
            if key in _MEMBERS_OWN:
                raise InputError(
                    f"Panel: {key} is each member's (the panel file's), not the panel's"
                )
            if key not in _SHARED:
                raise InputError(
                    f"Panel: unknown setting {key!r}: a panel takes ICRM's judging and cache "
                    "settings (num_shots, use_cache …); a member's engine options are the "
                    "panel file's"
                )
        self._open(spec, Settings.from_flat(icrm_options), require_all)

    @classmethod
    def from_settings(cls, spec: PanelSpec, settings: Settings, require_all: bool = False) -> Panel:
        """A panel whose members share ``settings``' judging and cache groups and its
        engine's seed (each member names its own engine, model and options)."""
        panel = cls.__new__(cls)
        panel._open(spec, settings, require_all)
        return panel

    def _open(self, spec: PanelSpec, settings: Settings, require_all: bool) -> None:
        """Every member's hosted engine checked first, then one ``ICRM`` per member, the
        members on one engine sharing its backend; what opened is closed if one fails."""
        for member in spec.members:
            try:
                preflight(member.engine.name, member.engine.model_name, member.engine.options)
            except InputError as exc:
                raise InputError(f"panel {spec.name}: {member.label}: {exc}") from None
        self.spec = spec
        self.name = spec.name
        self.require_all = require_all
        self.models: list[Any] = []
        self._closed = False
        from icrm_sgl.judging.icrm import ICRM  # imports sglang: only once the panel is checked

        shared: dict[str, Any] = {}
        try:
            for member in spec.members:
                engine = member.engine.model_copy(update={"seed": settings.engine.seed})
                member_settings = Settings(engine, settings.judging, settings.cache)
                key = json.dumps(engine.values(), sort_keys=True, default=str)
                try:
                    model = ICRM.from_settings(
                        *member_settings.with_judge(member.judge), backend=shared.get(key)
                    )
                except InputError as exc:
                    raise InputError(f"panel {spec.name}: {member.label}: {exc}") from None
                shared.setdefault(key, model.backend)
                self.models.append(model)
        except BaseException:
            self.close()
            raise

    @property
    def members(self) -> tuple[Member, ...]:
        return self.spec.members

    @property
    def judges(self) -> tuple[Judge, ...]:
        """Each member's judge, in the file's order."""
        return self.spec.judges

    def example(self, build: Callable[[Judge], Mapping[str, Any]]) -> dict[str, Any]:
        """One example every member reads (see ``PanelSpec.example``)."""
        return self.spec.example(build)

    # -- judging -------------------------------------------------------------------------

    def judge_batch(
        self, examples: Iterable[Mapping[str, Any]], progress: bool = False, **gen: Any
    ) -> Iterator[Judgement]:
        """The panel's judgement of each example: malformed ones (for any member) first,
        then the rest in order. Two-reply members judge the order given (see
        ``judge_pairs`` for both)."""
        return self._run(examples, None, progress, gen)

    def judge_pairs(
        self,
        examples: Iterable[Mapping[str, Any]],
        both_orders: bool = True,
        progress: bool = False,
        **gen: Any,
    ) -> Iterator[Judgement]:
        """Two-reply examples, each member judging A/B and (``both_orders``) B/A,
        reconciled by the member's judge before the panel combines them."""
        if not self.spec.pairs:
            raise InputError(f"panel {self.name}: its members judge one reply, not two")
        return self._run(examples, both_orders, progress, gen)

    def judge(self, example: Mapping[str, Any], **gen: Any) -> Judgement:
        """One example; raises ``InputError`` or ``VerdictError`` instead of failing soft."""
        return _one(self.judge_batch([example], **gen))

    def judge_pair(
        self, example: Mapping[str, Any], both_orders: bool = True, **gen: Any
    ) -> Judgement:
        """One pair in both orders (or one), raising as ``judge`` does."""
        return _one(self.judge_pairs([example], both_orders, **gen))

    def ranking_row(self, result: Judgement) -> tuple[dict[str, Any], tuple[float, float]]:
        """A judged reply's row for ``rank``: the panel's reward and agreement."""
        reward = result.meta["reward"]
        row = {"reward": reward, "agreement": result.meta["agreement"], "verdict": result.verdict}
        return row, (reward, reward)

    def ranking_comparison(
        self, build: Callable[[Judge], Mapping[str, Any]], **gen: Any
    ) -> dict[str, Any]:
        """One comparison for ``rank``: the panel's reward (0-1, 0.5 a tie: the first
        reply's share) and agreement, each member reading the pair as its judge takes it."""
        result = self.judge_pair(self.example(build), True, **gen)
        decision = (result.verdict or {}).get("decision")
        meta = result.meta
        return {WINS: meta["reward"], "decision": decision, "agreement": meta["agreement"]}

    def check(self, gen: Mapping[str, Any]) -> None:
        """Raise ``InputError`` now for generation settings any member would reject (and
        ``EngineError`` once the panel is closed)."""
        if self._closed:
            raise EngineError(f"panel {self.name} is closed; create a new one to judge again")
        for model in self.models:
            list(model.judge_batch([], **gen))

    def _run(
        self,
        examples: Iterable[Mapping[str, Any]],
        both_orders: bool | None,
        progress: bool,
        gen: dict[str, Any],
    ) -> Iterator[Judgement]:
        self.check(gen)  # arguments are checked at the call, as ICRM's are
        failures, valid = self._prepare(check_examples(examples))
        return self._results(failures, valid, both_orders, progress, gen)

    def _results(
        self,
        failures: list[Judgement],
        valid: list[dict[str, Any]],
        both_orders: bool | None,
        progress: bool,
        gen: dict[str, Any],
    ) -> Iterator[Judgement]:
        """Each example's panel judgement, in order, as soon as every member has judged it
        (so a caller writes each one then, as it does for one judge)."""
        yield from failures
        if not valid:
            return
        # Members' verdicts meet by position (a file may repeat an id).
        numbered = [{**example, "id": str(k)} for k, example in enumerate(valid)]
        arrived: queue.Queue[tuple[int, str | None, Any]] = queue.Queue()
        pool = ThreadPoolExecutor(len(self.models), thread_name_prefix="icrm-panel")
        for index in range(len(self.models)):
            pool.submit(self._member_run, index, numbered, both_orders, progress, gen, arrived)
        got: list[dict[str, combine.Outcome]] = [{} for _ in self.models]
        running, k = len(self.models), 0
        try:
            while k < len(valid):
                index, key, outcome = arrived.get()
                if isinstance(outcome, BaseException):
                    raise outcome
                if key is None:  # that member's batch is over
                    running -= 1
                else:
                    got[index][key] = outcome
                while k < len(valid) and all(str(k) in found for found in got):
                    outcomes = [found.pop(str(k)) for found in got]
                    yield combine.combine(self.spec, valid[k]["id"], outcomes, self.require_all)
                    k += 1
                if k < len(valid) and not running:
                    raise EngineError(f"panel {self.name}: a member gave no result for an example")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _member_run(
        self,
        index: int,
        examples: list[dict[str, Any]],
        both_orders: bool | None,
        progress: bool,
        gen: dict[str, Any],
        arrived: queue.Queue[tuple[int, str | None, Any]],
    ) -> None:
        """One member's thread: its whole batch, each result put as an outcome as it comes,
        then ``(index, None, None)`` (or the exception that ended it)."""
        model, member = self.models[index], self.members[index]
        shown = progress and index == 0  # one bar: the first member's
        try:
            if self.spec.pairs:
                from icrm_sgl.judging.pair_judging import judge_pairs

                found = judge_pairs(model, examples, bool(both_orders), progress=shown, **gen)
                for r in found:
                    arrived.put((index, r.id, combine.two_replies(member, model.model_name, r)))
            else:
                for r in model.judge_batch(examples, progress=shown, **gen):
                    arrived.put((index, r.id, combine.one_reply(member, model.model_name, r)))
            arrived.put((index, None, None))
        except BaseException as exc:
            arrived.put((index, None, exc))

    def _prepare(self, examples: Iterable[Any]) -> tuple[list[Judgement], list[dict[str, Any]]]:
        """Each example checked against every member's inputs: a failure for one that any
        member cannot read (no member judges it), the others with their ids."""
        failures, valid = [], []
        for i, example in enumerate(examples):
            ex_id = str(example.get("id", i)) if isinstance(example, Mapping) else str(i)
            try:
                if not isinstance(example, Mapping):
                    raise InputError(f"example {ex_id}: expected an object")
                for judge in self.judges:
                    judge.example_fields(example, f"example {ex_id}")
            except InputError as exc:
                failures.append(Judgement(ex_id, error=str(exc), meta={"stage": "input"}))
                continue
            valid.append({**example, "id": ex_id})
        return failures, valid

    def close(self) -> None:
        """Close the members, borrowers before the owners of their backends; once."""
        self._closed = True
        for model in reversed(self.models):
            model.close()

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one(results: Iterator[Judgement]) -> Judgement:
    (result,) = results
    if not result.ok:
        error = InputError if result.meta.get("stage") == "input" else VerdictError
        raise error(f"example {result.id}: {result.error}")
    return result
