"""How a batch of validated examples becomes judgements: sglang programs or hosted requests."""

from icrm_sgl.runners.base import Batch, RunContext, Runner
from icrm_sgl.runners.cached import run_cached
from icrm_sgl.runners.hosted import HostedRunner
from icrm_sgl.runners.programs import ProgramRunner

__all__ = ["Batch", "HostedRunner", "ProgramRunner", "RunContext", "Runner", "run_cached"]
