"""Wormhole execution plane: executes workflow steps pulled from a job queue."""

__version__ = "0.1.0"
