"""Checks: the plan's tasks scheduled once, run natively or as Dagger containers."""

# Here, not in check.native: the argument parser needs it without loading the runtime.
DEFAULT_TASK_TIMEOUT = 1800.0
