"""Judging programs for use in your own sglang code: a config from a few names."""

from __future__ import annotations

from pathlib import Path

from icrm_sgl.programs.judge import ProgramConfig
from icrm_sgl.programs.prompts import PromptTemplates
from icrm_sgl.shots import load_shots, sample_shots


def program_config(
    rm_type: str,
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

    Pass it to ``build_program`` for a ready ``@sgl.function``, or to ``write_judgement``
    inside your own program. ``sample=True`` draws the score / choice instead of picking it
    by ``select`` (use it with temperature > 0).
    """
    templates = PromptTemplates.load(rm_type, template_path, shot_template_path)
    shots = sample_shots(load_shots(rm_type, shots_pool_path), num_shots, shot_sampling, seed)
    return ProgramConfig(
        rm_type=rm_type,
        prompt=templates.with_shots(shots),
        completion=completion,
        field_tokens=field_tokens,
        sample_final=sample,
        layout=layout,
    )
