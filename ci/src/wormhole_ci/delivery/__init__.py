"""Validating a monorepo's delivery configuration: alert rules, Alertmanager, dashboards,
runbooks and the Coolify stack (the `delivery` service kind, `wormhole-ci validate-delivery`)."""
