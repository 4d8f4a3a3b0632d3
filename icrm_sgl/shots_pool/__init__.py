"""Packaged shot pools (individual.json, pairwise.json)."""
