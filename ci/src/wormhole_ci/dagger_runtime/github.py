"""The module's GitHub arguments, turned into the core's target (the engine's environment is
not the runner's, so what GITHUB_* would say comes in as arguments)."""

from __future__ import annotations

from dataclasses import dataclass

import dagger

from wormhole_ci.notify.github import GitHubTarget, github_target
from wormhole_ci.secretref import Secret


@dataclass(frozen=True)
class GitHubInputs:
    """A function's GitHub arguments (all optional: no token, no GitHub calls)."""

    token: dagger.Secret | None = None
    repository: str = ""
    api_url: str = ""
    log_url: str = ""

    async def target(self) -> tuple[GitHubTarget | None, str | None]:
        """The target (None without a token or repository) and the token's value (to redact);
        a malformed repository raises NotifyError."""
        token = await self.token.plaintext() if self.token else None
        secret = Secret("--github-token", token) if token else None
        return github_target(secret, self.repository, {}, self.api_url or None), token
