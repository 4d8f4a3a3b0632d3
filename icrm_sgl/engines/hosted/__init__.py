"""Hosted engines: HTTP APIs that return a whole verdict per call, validated and re-asked."""

from icrm_sgl.engines.hosted.base import HostedEngine, HostedOptions
from icrm_sgl.engines.hosted.reask import Reply

__all__ = ["HostedEngine", "HostedOptions", "Reply"]
