"""The pipeline's own signals: what release, migrate and deploy push to Prometheus, and the
metric names the alert rules share."""
