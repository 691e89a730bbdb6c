"""GitHub's REST API for deployments, deployment statuses and issue comments.

Endpoints and fields, as documented (REST API version 2022-11-28):
- Create a deployment: `POST /repos/{owner}/{repo}/deployments` with `ref`, `environment`,
  `description`, `auto_merge`, `required_contexts`, `transient_environment`,
  `production_environment`; 201 with the deployment's `id` (202 only for an auto-merge,
  which we turn off). docs.github.com/en/rest/deployments/deployments#create-a-deployment
- Create a deployment status: `POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses`
  with `state` (error, failure, inactive, in_progress, queued, pending, success),
  `description` (at most 140 characters), `environment_url`, `log_url`, `auto_inactive`.
  docs.github.com/en/rest/deployments/statuses#create-a-deployment-status
- Issue comments (a pull request is an issue): `GET /repos/{owner}/{repo}/issues/{issue_number}/
  comments` (`per_page` ≤ 100, `page`), `POST` the same path with `{"body"}`, `PATCH
  /repos/{owner}/{repo}/issues/comments/{comment_id}` with `{"body"}`.
  docs.github.com/en/rest/issues/comments
- Headers on every request: `Accept: application/vnd.github+json`, `X-GitHub-Api-Version:
  2022-11-28`, `Authorization: Bearer <token>`. docs.github.com/en/rest/about-the-rest-api/
  api-versions and .../authenticating-to-the-rest-api
- `GITHUB_API_URL` is the API base Actions sets (https://api.github.com on github.com, the
  server's /api/v3 on GitHub Enterprise Server). docs.github.com/en/actions/reference/
  variables-reference
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.notify.http import JsonClient, NotifyError, Retry
from wormhole_ci.secretref import Secret

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
"""GitHub's documented default, used only when GITHUB_API_URL is not set."""
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_MAX_PAGES = 20
"""2,000 comments: past that the marker comment is not looked for (a new one is posted)."""


@dataclass(frozen=True)
class GitHubTarget:
    """Where statuses go: the API base, the `owner/repo`, and the token (never printed)."""

    api_url: str
    repository: str
    token: Secret


def github_target(
    token: Secret | None,
    repository: str | None,
    environ: Mapping[str, str],
    api_url: str | None = None,
) -> GitHubTarget | None:
    """The target when both a token and a repository are known, else None (nothing is
    reported). The repository defaults to GITHUB_REPOSITORY, the base to GITHUB_API_URL."""
    repo = repository or environ.get("GITHUB_REPOSITORY", "")
    if token is None or not repo:
        return None
    if not _REPOSITORY.match(repo):
        raise NotifyError(f"GitHub repository {repo!r}: expected owner/name")
    base = api_url or environ.get("GITHUB_API_URL") or DEFAULT_API_URL
    return GitHubTarget(base.rstrip("/"), repo, token)


def actions_run_url(environ: Mapping[str, str]) -> str:
    """The GitHub Actions run's page (the deployment's `log_url`), or "" outside Actions."""
    server, repo, run = (
        environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server.rstrip('/')}/{repo}/actions/runs/{run}" if server and repo and run else ""


class GitHub:
    """The few calls the reporters make; each retried within its deadline (http.py)."""

    def __init__(
        self,
        target: GitHubTarget,
        *,
        retry: Retry | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        client = httpx.Client(
            base_url=f"{target.api_url}/repos/{target.repository}",
            transport=transport,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "Authorization": f"Bearer {target.token.reveal()}",
                "User-Agent": "wormhole-ci",  # GitHub refuses requests without one
            },
        )
        self.http = JsonClient(
            client, retry or Retry(), (target.token.reveal(),), sleep=sleep, clock=clock
        )

    def close(self) -> None:
        self.http.client.close()

    def create_deployment(
        self, *, ref: str, environment: str, description: str, transient: bool = False
    ) -> int:
        """A deployment of `ref` to `environment`; its id."""
        body: dict[str, object] = {
            "ref": ref,
            "environment": environment,
            "description": description[:140],
            # The release already ran its own gates: no merge of the default branch into
            # ref, and no wait for the commit's other status contexts (a 409 otherwise).
            "auto_merge": False,
            "required_contexts": [],
            "transient_environment": transient,
            "production_environment": environment == "production",
        }
        data = self.http.send("POST", "/deployments", "GitHub create deployment", body=body)
        return _id(data, "GitHub create deployment")

    def create_status(
        self,
        deployment: int,
        *,
        state: str,
        description: str,
        environment_url: str = "",
        log_url: str = "",
    ) -> None:
        body: dict[str, object] = {"state": state, "description": description[:140]}
        if environment_url:
            body["environment_url"] = environment_url
        if log_url:
            body["log_url"] = log_url
        self.http.send(
            "POST",
            f"/deployments/{deployment}/statuses",
            f"GitHub deployment {deployment} status {state}",
            body=body,
        )

    def list_deployments(self, environment: str) -> list[int]:
        """The ids of the environment's deployments (the newest 100: a PR's pushes)."""
        response = self.http.send(
            "GET",
            "/deployments",
            f"GitHub deployments of {environment}",
            params={"environment": environment, "per_page": 100},
        )
        ids = [(as_dict(item) or {}).get("id") for item in as_list(_json(response)) or []]
        return [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]

    def upsert_comment(self, issue: int, marker: str, render: Callable[[str | None], str]) -> int:
        """PATCH the issue's comment holding `marker` with `render(its body)`, else POST
        `render(None)`; its id. The body is read just before it is rewritten, so a writer
        keeps what another wrote in the meantime (the sections it does not own)."""
        found = self._find_comment(issue, marker)
        what = f"GitHub comment on #{issue}"
        if found is not None:
            ident, body = found
            self.http.send("PATCH", f"/issues/comments/{ident}", what, body={"body": render(body)})
            return ident
        data = self.http.send(
            "POST", f"/issues/{issue}/comments", what, body={"body": render(None)}
        )
        return _id(data, what)

    def _find_comment(self, issue: int, marker: str) -> tuple[int, str] | None:
        """The first comment holding `marker`: its id and body."""
        for page in range(1, _MAX_PAGES + 1):
            response = self.http.send(
                "GET",
                f"/issues/{issue}/comments",
                f"GitHub comments of #{issue}",
                params={"per_page": 100, "page": page},
            )
            comments = _comments(response)
            for comment_id, text in comments:
                if marker in text:
                    return comment_id, text
            if len(comments) < 100:
                return None
        return None


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _id(response: httpx.Response, what: str) -> int:
    value = (as_dict(_json(response)) or {}).get("id")
    if isinstance(value, int):
        return value
    raise NotifyError(f"{what}: HTTP {response.status_code} without an id in its answer")


def _comments(response: httpx.Response) -> list[tuple[int, str]]:
    """(id, body) of each comment of a list answer; anything else is skipped."""
    out: list[tuple[int, str]] = []
    for item in as_list(_json(response)) or []:
        comment = as_dict(item) or {}
        ident, text = comment.get("id"), comment.get("body")
        if isinstance(ident, int) and isinstance(text, str):
            out.append((ident, text))
    return out
