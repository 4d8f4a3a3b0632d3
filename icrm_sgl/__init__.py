"""icrm-sgl: an in-context reward model built on sglang programs with constrained decoding."""

from icrm_sgl.errors import (
    EngineError,
    IcrmError,
    InputError,
    MissingDependencyError,
    VerdictError,
)
from icrm_sgl.icrm import ICRM
from icrm_sgl.judgement import Judgement
from icrm_sgl.programs.judge import ProgramConfig, build_program
from icrm_sgl.schemas import IndividualVerdict, PairwiseVerdict, json_schema, validate_verdict
from icrm_sgl.shots import load_shots, sample_shots

__all__ = [
    "ICRM",
    "EngineError",
    "IcrmError",
    "IndividualVerdict",
    "InputError",
    "Judgement",
    "MissingDependencyError",
    "PairwiseVerdict",
    "ProgramConfig",
    "VerdictError",
    "build_program",
    "json_schema",
    "load_shots",
    "sample_shots",
    "validate_verdict",
]
