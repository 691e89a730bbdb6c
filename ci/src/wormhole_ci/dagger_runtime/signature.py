"""The Dagger functions' cache policies and argument types: what `dagger call --help` shows
for each argument, declared once for main.py's functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, TypeAlias, TypeVar, cast

import dagger
from dagger import DefaultPath, Doc, Ignore, function

from wormhole_ci.dagger_runtime.source import SOURCE_IGNORE

# Cache policies (DESIGN.md §3; Dagger caches a function without one for up to 7 days).
SIDE_EFFECTS = "never"
"""release, deploy, migrate, publish, hasura-apply change the world, and drift reads live
state: they run on every call."""
FRESH = "session"
"""The scans: advisories appear daily, so a new session (the nightly run, the next CI job)
always rescans, while calls within one session (scan-report after scan) share the run."""
PURE = ""
"""Checks and builds of a source Directory: the engine's default (same inputs, same answer)."""
REPORTED = "session"
"""check and check-report: pure checks, but with --pr-comment they also write the PR's
comment, which a result cached for days would skip (a re-run after a GitHub outage must
write it). A new session (the next CI job, a re-run) runs them again, calls within one
session share the result, and every unchanged exec is still reused from the engine's cache."""
Fn = TypeVar("Fn", bound=Callable[..., Awaitable[object]])


def cached(policy: str) -> Callable[[Fn], Fn]:
    """`@function(cache=policy)`: dagger-io 0.21.11 takes `cache`, but its typing overloads
    omit it, so the call goes through an untyped view of the same decorator."""
    decorate = cast(Callable[..., Callable[[Fn], Fn]], function)
    return decorate(cache=policy)


Source: TypeAlias = Annotated[
    dagger.Directory,
    Doc("The monorepo: the folder holding wormhole-ci.toml (default: the repository root)"),
    DefaultPath("/"),
    Ignore(SOURCE_IGNORE),
]
FailOnArg: TypeAlias = Annotated[
    str | None,
    Doc(
        "Lowest severity that fails the scan: critical, high, medium, low or none "
        "(default: security.fail_on in wormhole-ci.toml, else high)"
    ),
]
AllowUnavailable: TypeAlias = Annotated[
    bool, Doc("Do not fail when a scanner could not run (still reported as not scanned)")
]
CommitSha: TypeAlias = Annotated[
    str, Doc("Commit SHA baked into the image (BUILD_SHA, labels); CI: the pushed commit")
]
VersionTag: TypeAlias = Annotated[str, Doc("An extra immutable tag such as v1.4.0")]
Platforms: TypeAlias = Annotated[
    Sequence[str], Doc("Target platforms: linux/amd64, linux/arm64 (default: the engine's)")
]
BuildArgs: TypeAlias = Annotated[
    Sequence[str], Doc("Extra build arguments NAME=VALUE, e.g. NODE_IMAGE=mirror/node:20")
]
HasuraAdminSecret: TypeAlias = Annotated[
    dagger.Secret | None,
    Doc("The environment's Hasura admin secret (required when it has [environments.NAME.hasura])"),
]
PushgatewayAuth: TypeAlias = Annotated[
    dagger.Secret | None,
    Doc(
        "user:password or bearer token of the environment's Pushgateway (when its "
        "[observability] names pushgateway_auth; without it nothing is pushed)"
    ),
]
Explain: TypeAlias = Annotated[
    bool,
    Doc(
        "Say what decides reuse here: the engine's cache (an exec is reused when its container, "
        "command, env and files are unchanged; progress output marks it CACHED)"
    ),
]
SinceRef: TypeAlias = Annotated[
    str,
    Doc(
        "Only the services affected since this base commit (CI: the pull request's base SHA), "
        "from the paths --changed lists; without --changed every service runs, with a note"
    ),
]
ChangedPaths: TypeAlias = Annotated[
    dagger.File | None,
    Doc("`git diff --name-only BASE HEAD`: the paths changed since --since, one a line"),
]
RepoPath: TypeAlias = Annotated[
    str, Doc("The monorepo's folder in the git repository, when --source is not its root")
]
GitHubToken: TypeAlias = Annotated[
    dagger.Secret | None,
    Doc(
        "A token that may write deployments (Actions: GITHUB_TOKEN with deployments: write): "
        "the release is reported as a GitHub Deployment; without it nothing is"
    ),
]
NotifyUrl: TypeAlias = Annotated[
    dagger.Secret | None,
    Doc(
        "The webhook URL of the environment's [notify] (a credential); without it the "
        "outcome is not announced"
    ),
]
PrCommentArg: TypeAlias = Annotated[
    int,
    Doc(
        "Write the check summary into this pull request's wormhole-ci comment (its checks "
        "section; needs --github-token and --github-repository); a GitHub failure only warns"
    ),
]
CommentToken: TypeAlias = Annotated[
    dagger.Secret | None,
    Doc(
        "A token that may write PR comments (Actions: GITHUB_TOKEN with pull-requests: write), "
        "for --pr-comment"
    ),
]
CommentRepository: TypeAlias = Annotated[
    str, Doc("owner/name of the pull request (Actions: github.repository)")
]
GitHubApiUrl: TypeAlias = Annotated[
    str, Doc("GitHub's API base (Actions: github.api_url; default https://api.github.com)")
]
CommentSha: TypeAlias = Annotated[
    str, Doc("The commit the PR comment names (CI: the pull request's head SHA)")
]
ServiceName: TypeAlias = Annotated[
    str | None, Doc("Only this service (a name from wormhole-ci.toml); default: every service")
]
