"""The pipeline's own signals: what release, migrate and deploy report to Prometheus."""
