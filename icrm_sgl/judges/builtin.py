"""The two built-in judges, individual and pairwise, as judge definitions.

Everything specific to either mode lives here: its verdict model, its templates and
shots pool, the inputs it reads, its reward and, for pairwise, how a verdict reads with
the replies swapped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from icrm_sgl.judges.inputs import ConversationInputs, Inputs, PairInputs
from icrm_sgl.judges.judge import Judge, PairSpec, feedback_key
from icrm_sgl.judges.template import Template
from icrm_sgl.judges.verdicts import MARGINS, SWAPPED, IndividualVerdict, PairwiseVerdict


@dataclass(frozen=True)
class BuiltinSpec:
    """What a built-in judge is made of, before its templates and shots are read."""

    model: type
    inputs: Inputs
    reward: str
    reward_key: str
    scale: dict[str, float]
    pair: PairSpec | None = None


BUILTINS: dict[str, BuiltinSpec] = {
    "individual": BuiltinSpec(
        IndividualVerdict, ConversationInputs(), "score", "expected_score", {}
    ),
    "pairwise": BuiltinSpec(
        PairwiseVerdict,
        PairInputs(),
        "choice",
        "expected_margin",
        {c: float(m) for c, m in MARGINS.items()},
        PairSpec(("conversation_A", "conversation_B"), SWAPPED),
    ),
}


def builtin_judge(
    name: str,
    template_path: str | Path | None = None,
    shot_template_path: str | Path | None = None,
    feedback_template_path: str | Path | None = None,
    shots_pool_path: str | Path | None = None,
) -> Judge:
    """A built-in judge, with the user's templates (seed ``{$key}`` style) or shots pool
    in place of the packaged ones."""
    from icrm_sgl.errors import InputError
    from icrm_sgl.judges.shots import builtin_pool_path, load_shots  # shots import judges.verdicts

    spec = BUILTINS.get(name)
    if spec is None:
        raise InputError(f"unknown rm_type {name!r}: expected one of {', '.join(BUILTINS)}")
    keys = frozenset(spec.inputs.keys)
    judge = Judge(
        name=name,
        model=spec.model,
        overall=_template(
            template_path, f"{name}.template", keys | {"shots"}, keys - {"history"} | {"shots"}
        ),
        inputs=spec.inputs,
        shot=_template(
            shot_template_path,
            f"{name}_shot.template",
            keys | {"index", "feedback"},
            keys - {"history"} | {"feedback"},
        ),
        reward=spec.reward,
        reward_key=spec.reward_key,
        scale=spec.scale,
        pair=spec.pair,
        named_reward=False,  # expected_score / expected_margin: expectations only
    )
    if feedback_template_path is not None:
        names = [feedback_key(k) for k in judge.keys]
        feedback = Template.load(
            feedback_template_path, allowed=frozenset(names), required=frozenset(names[-1:])
        )
        judge = replace(judge, feedback=feedback)
    pool = shots_pool_path if shots_pool_path is not None else builtin_pool_path(name)
    return replace(judge, shots_pool=tuple(load_shots(judge, pool)))


def _template(
    path: str | Path | None, builtin: str, allowed: frozenset[str], required: frozenset[str]
) -> Template:
    if path is not None:
        return Template.load(path, allowed=allowed, required=required)
    text = resources.files("icrm_sgl.judges").joinpath("templates", builtin).read_text("utf-8")
    return Template.parse(text, name=builtin, allowed=allowed, required=required)
