"""`deploy` from the module: the registry check and the Coolify rollout run in the module
itself (HTTPS calls, no container), in a worker thread."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import anyio
import dagger
from dagger import dag

from wormhole_ci.dagger_runtime.source import DaggerSource, shown
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.deploy.probe import probe_environment
from wormhole_ci.deploy.published import check_published
from wormhole_ci.deploy.rollout import (
    DeployFailed,
    DeployOptions,
    DeployResult,
    deploy_environment,
)
from wormhole_ci.images.spec import ImageSpec, Revision, check_sha, image_specs
from wormhole_ci.manifest import Environment
from wormhole_ci.observability.push import deploy_signal, push_signals, pushgateway_with
from wormhole_ci.secretref import redact


async def deploy_commit(
    source: DaggerSource,
    *,
    environment: str,
    tag: str,
    coolify_token: dagger.Secret,
    registry_password: dagger.Secret | None,
    registry_username: str,
    rollback: bool,
    pushgateway_auth: dagger.Secret | None = None,
    dry_run: bool = False,
) -> dagger.Directory:
    """Refuse unless the registry holds the commit's images, then roll it out; deploy.json
    and `status` whether or not the deploy succeeded (and its outcome pushed to the
    environment's Pushgateway, when it has one). `dry_run`: the read-only probe instead
    (deploy/probe.py, as `wormhole-ci deploy --dry-run`), nothing pushed anywhere."""
    rev = Revision(check_sha(tag))
    env, specs = await source.planned(lambda m: (m.environment(environment), image_specs(m)))
    user = registry_username or env.registry_username
    secret = await registry_password.plaintext() if registry_password else None
    if dry_run:
        token = await coolify_token.plaintext()
        return await anyio.to_thread.run_sync(
            lambda: _probed(env, specs, rev, token, username=user, password=secret)
        )
    await anyio.to_thread.run_sync(
        lambda: check_published(env, specs, rev, username=user, password=secret)
    )
    try:
        result = await _deploy_env(env, rev, coolify_token, rollback=rollback)
    except DeployFailed as exc:
        result = exc.result
    auth = await pushgateway_auth.plaintext() if pushgateway_auth else None
    gateway = pushgateway_with(env, auth, shown, "no --pushgateway-auth was given")
    signal = deploy_signal(env.name, result.outcome, rev.short, result.seconds)
    await anyio.to_thread.run_sync(lambda: push_signals(gateway, [signal], shown))
    text = redact(result.to_json(), await coolify_token.plaintext())
    return (
        dag.directory()
        .with_new_file("deploy.json", text + "\n")
        .with_new_file("status", result.outcome + "\n")
    )


async def _deploy_env(
    env: Environment, rev: Revision, token: dagger.Secret, *, rollback: bool
) -> DeployResult:
    """The deploy runs in the module itself: Coolify's API over HTTPS, no container."""
    plaintext = await token.plaintext()
    options = DeployOptions.for_environment(
        env, sha=rev.sha, image_tag=rev.short, rollback=rollback
    )
    coolify = Coolify(env.coolify_url, plaintext)

    def say(line: str) -> None:  # progress, shown by `dagger call`
        print(redact(line, plaintext), file=sys.stderr, flush=True)

    return await anyio.to_thread.run_sync(lambda: deploy_environment(env, coolify, options, say))


def _probed(
    env: Environment,
    specs: Sequence[ImageSpec],
    rev: Revision,
    token: str,
    *,
    username: str | None,
    password: str | None,
) -> dagger.Directory:
    """The dry run: GET requests only (registry, Coolify, health URLs); deploy.json holds the
    probe's result and `status` its outcome (`dry-run`, or `refused` when a deploy would be)."""

    def published() -> None:
        check_published(env, specs, rev, username=username, password=password)

    with Coolify(env.coolify_url, token) as coolify:
        result = probe_environment(
            env, coolify, sha=rev.sha, image_tag=rev.short, published=published
        )
    for line in [*result.lines(), result.summary()]:  # shown by `dagger call`
        print(redact(line, token), file=sys.stderr, flush=True)
    return (
        dag.directory()
        .with_new_file("deploy.json", redact(result.to_json(), token) + "\n")
        .with_new_file("status", result.outcome + "\n")
    )
