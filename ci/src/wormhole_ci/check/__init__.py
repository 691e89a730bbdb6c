"""Checks: the plan's tasks scheduled once, run natively or as Dagger containers."""
