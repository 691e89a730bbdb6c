"""Status back where people look: GitHub Deployments and PR comments, chat and JSON webhooks."""
