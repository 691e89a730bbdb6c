"""Observability: the names of the metrics the pipeline pushes, shared with the alert rules."""
