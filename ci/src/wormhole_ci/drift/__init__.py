"""Drift: what runs in an environment compared with the repository, read-only."""
