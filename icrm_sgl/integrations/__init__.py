"""Adapters for training libraries: a TRL-style pairwise judge and plain reward functions."""
