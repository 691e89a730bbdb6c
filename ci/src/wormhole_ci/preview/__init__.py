"""Per-pull-request preview environments: images, a database, Coolify previews, verified."""
