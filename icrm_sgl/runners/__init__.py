"""How a batch of validated examples becomes judgements: sglang programs or hosted
requests, behind the one verdict cache."""

from icrm_sgl.runners.base import Batch, RunContext, Runner
from icrm_sgl.runners.cache import VerdictCache, cache_key, run_cached
from icrm_sgl.runners.hosted import HostedRunner
from icrm_sgl.runners.programs import ProgramRunner

__all__ = [
    "Batch",
    "HostedRunner",
    "ProgramRunner",
    "RunContext",
    "Runner",
    "VerdictCache",
    "cache_key",
    "run_cached",
]
