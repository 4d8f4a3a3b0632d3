"""Judging programs for use in your own sglang code: a config from a few names."""

from __future__ import annotations

from typing import Any

from icrm_sgl.judges import Judge
from icrm_sgl.judging.settings import JudgingSettings
from icrm_sgl.programs.judge import ProgramConfig


def program_config(
    rm_type: Judge | str,
    *,
    shot_sampling: str | None = None,
    completion: bool = ProgramConfig.completion,
    layout: str = ProgramConfig.layout,
    sample: bool = ProgramConfig.sample_final,
    **settings: Any,
) -> ProgramConfig:
    """The ``ProgramConfig`` that ``ICRM`` would build for these settings.

    ``rm_type`` is a built-in judge's name ('individual', 'pairwise'), a rubric path or a
    ``Judge``, resolved as ``ICRM`` resolves it. ``settings`` are ``JudgingSettings``'
    (``num_shots``, ``seed``, ``field_tokens``, the built-in judges' template and pool
    paths …), with its defaults; ``shot_sampling`` is its ``shot_sampling_mode``. Pass the
    result to ``build_program`` for a ready ``@sgl.function``, or to ``write_judgement``
    inside your own program. ``sample=True`` draws each choice / score instead of picking
    it by ``select`` (use it with temperature > 0).
    """
    if shot_sampling is not None:
        settings["shot_sampling_mode"] = shot_sampling
    judging = JudgingSettings(**settings).with_judge(rm_type)
    judge = judging.definition()
    return ProgramConfig(
        judge=judge,
        prompt=judge.prompt(judging.shots(judge, judging.num_shots)),
        completion=completion,
        field_tokens=judging.field_tokens,
        sample_final=sample,
        layout=layout,
    )
