"""icrm-sgl: an in-context reward model built on sglang programs with constrained decoding.

Names that need sglang load on first use, so that the CLI's help starts quickly; and
sglang's own package ``__init__`` (torch, transformers) is deferred until something reads
a name from it (``plumbing/deferred_import.py``): the programs need its frontend only.
"""

from __future__ import annotations

import importlib
from typing import Any

from icrm_sgl.errors import (
    EngineError,
    IcrmError,
    InputError,
    MissingDependencyError,
    VerdictError,
)
from icrm_sgl.judges.shots import load_shots, sample_shots
from icrm_sgl.judges.verdicts import IndividualVerdict, PairwiseVerdict
from icrm_sgl.plumbing.deferred_import import defer_init
from icrm_sgl.plumbing.judgement import Judgement

# Before any module of the package imports sglang.lang (none of the above does).
defer_init("sglang")

_LAZY = {
    "ICRM": "icrm_sgl.judging.icrm",
    "ProgramConfig": "icrm_sgl.programs.judge",
    "build_program": "icrm_sgl.programs.judge",
    "write_judgement": "icrm_sgl.programs.judge",
    "read_verdict": "icrm_sgl.programs.judge",
    "program_config": "icrm_sgl.judging.program_config",
    "Judge": "icrm_sgl.judges",
    "make_judge": "icrm_sgl.judges",
    "load_rubric": "icrm_sgl.judges.rubric",
    "Panel": "icrm_sgl.panel.panel",
    "load_panel": "icrm_sgl.panel.spec",
    "CacheSettings": "icrm_sgl.judging.settings",
    "EngineSettings": "icrm_sgl.judging.settings",
    "JudgingSettings": "icrm_sgl.judging.settings",
}

__all__ = [
    "ICRM",
    "CacheSettings",
    "EngineError",
    "EngineSettings",
    "IcrmError",
    "IndividualVerdict",
    "InputError",
    "Judge",
    "Judgement",
    "JudgingSettings",
    "MissingDependencyError",
    "PairwiseVerdict",
    "Panel",
    "ProgramConfig",
    "VerdictError",
    "build_program",
    "load_panel",
    "load_rubric",
    "load_shots",
    "make_judge",
    "program_config",
    "read_verdict",
    "sample_shots",
    "write_judgement",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'icrm_sgl' has no attribute {name!r}")
