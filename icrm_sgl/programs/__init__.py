"""Prompt templates and the sglang judging programs."""
