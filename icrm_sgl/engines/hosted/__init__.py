"""Hosted engines: HTTP APIs that return a whole verdict per call, validated and re-asked."""

from icrm_sgl.engines.hosted.base import HostedEngine, HostedOptions, Reply

__all__ = ["HostedEngine", "HostedOptions", "Reply"]
