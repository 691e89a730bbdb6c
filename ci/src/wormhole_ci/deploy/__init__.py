"""Deploying to Coolify: the v4 API client and the release's deploy, verify and rollback steps."""
