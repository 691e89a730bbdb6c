"""The `delivery` service kind's validation: rules, alerts, dashboards, runbooks, Coolify stack."""
