"""Judging programs for use in your own sglang code: a config from a few names."""

from __future__ import annotations

from pathlib import Path

from icrm_sgl.judges import Judge
from icrm_sgl.options import JudgingSettings
from icrm_sgl.programs.judge import ProgramConfig


def program_config(
    rm_type: Judge | str,
    *,
    num_shots: int = 3,
    shot_sampling: str = "fixed",
    seed: int = 42,
    shots_pool_path: str | Path | None = None,
    template_path: str | Path | None = None,
    shot_template_path: str | Path | None = None,
    completion: bool = True,
    field_tokens: int = 128,
    layout: str = "per_field",
    sample: bool = False,
) -> ProgramConfig:
    """The ``ProgramConfig`` that ``ICRM`` would build for these settings.

    ``rm_type`` is a built-in judge's name ('individual', 'pairwise'), a rubric path or a
    ``Judge``, resolved as ``ICRM`` resolves it; the template and pool paths apply to the
    built-in judges. Pass the result to ``build_program`` for a ready ``@sgl.function``, or
    to ``write_judgement`` inside your own program. ``sample=True`` draws each choice /
    score instead of picking it by ``select`` (use it with temperature > 0).
    """
    judging = JudgingSettings(
        num_shots=num_shots,
        shot_sampling_mode=shot_sampling,
        seed=seed,
        shots_pool_path=shots_pool_path,
        template_path=template_path,
        shot_template_path=shot_template_path,
    ).with_judge(rm_type)
    judge = judging.definition()
    return ProgramConfig(
        judge=judge,
        prompt=judge.prompt(judging.shots(judge, num_shots)),
        completion=completion,
        field_tokens=field_tokens,
        sample_final=sample,
        layout=layout,
    )
