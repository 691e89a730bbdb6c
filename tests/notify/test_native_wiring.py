"""The native release's inputs for status reports: the [notify] URL from the variable the
manifest names (optional, never printed) and the --github-token reference."""

from __future__ import annotations

from dataclasses import replace

from tests.conftest import EXAMPLE
from wormhole_ci.arguments import parser
from wormhole_ci.manifest import NotifyTarget, load_manifest
from wormhole_ci.release.native import environment_secrets

HOOK = "https://hooks.example/services/T0/B0/n0tify-secret"


def environ() -> dict[str, str]:
    env = load_manifest(EXAMPLE).environment("staging")
    out = {var: "x-value-for-" + role for role, var in env.secrets.items()}
    out[env.secrets["database_url"]] = "postgresql://u:p4ss@127.0.0.1:5432/db"
    if env.hasura is not None:
        out[env.hasura.admin_secret] = "admin-value"
    return out


def test_the_notify_url_is_read_from_its_variable_and_hidden() -> None:
    env = replace(
        load_manifest(EXAMPLE).environment("staging"),
        notify=NotifyTarget("slack", "STAGING_NOTIFY_URL"),
    )
    secrets = environment_secrets(env, {**environ(), "STAGING_NOTIFY_URL": HOOK})
    assert (
        secrets.notify_url is not None
        and repr(secrets.notify_url) == "Secret(env:STAGING_NOTIFY_URL)"
    )
    assert HOOK in secrets.values()  # redacted from every line the release says
    # optional: without it the release runs (release_status warns once)
    assert environment_secrets(env, environ()).notify_url is None


def test_release_takes_a_github_token_reference() -> None:
    args = parser().parse_args(
        ["release", "--environment", "staging", "--github-token", "env:GITHUB_TOKEN"]
    )
    assert (args.github_token, args.github_repository) == ("env:GITHUB_TOKEN", "")
    args = parser().parse_args(["release", "--environment", "staging"])
    assert args.github_token is None


def test_preview_and_check_take_the_release_s_github_options() -> None:
    # the same names and the same secret-reference syntax as `release`
    for argv in (
        ["preview", "--environment", "staging", "--pr", "3"],
        ["check", "--pr-comment", "3"],
        ["test", "--pr-comment", "3"],
    ):
        args = parser().parse_args(
            [*argv, "--github-token", "env:GITHUB_TOKEN", "--github-repository", "acme/w"]
        )
        assert (args.github_token, args.github_repository) == ("env:GITHUB_TOKEN", "acme/w")
    args = parser().parse_args(["check"])
    assert (args.pr_comment, args.github_token, args.github_repository) == (None, None, "")
