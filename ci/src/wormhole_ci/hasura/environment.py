"""One environment's Hasura engine: the pinned engine image on its Coolify application, then
the repository's metadata applied (the release's hasura step and `hasura-apply`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from wormhole_ci.containers import HASURA_ENGINE_IMAGE
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.errors import HasuraApiError, ManifestError, SecretError
from wormhole_ci.hasura.apply import ApplyResult, apply_metadata
from wormhole_ci.hasura.client import HasuraClient
from wormhole_ci.hasura.metadata import hasura_project, repo_metadata
from wormhole_ci.manifest import MANIFEST_NAME, Environment, HasuraTarget, Manifest

ENGINE_TAG = HASURA_ENGINE_IMAGE.rpartition(":")[2]
"""The engine release this tool validates metadata against (validate-hasura's image)."""
HEALTH_POLL = 1.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class HasuraRun:
    """What applying the repository's metadata to one environment needs."""

    target: HasuraTarget
    admin_secret: str
    metadata: dict[str, object]
    """The repository's metadata JSON, built before anything is contacted."""


def apply_environment(
    run: HasuraRun,
    *,
    coolify: Coolify | None,
    say: Say,
    deploy_timeout: float = 900.0,
    health_timeout: float = 300.0,
    dry_run: bool = False,
) -> ApplyResult:
    """The engine on the pinned image (when its application is configured), then the
    metadata; raises HasuraApplyFailed (restored) or another WormholeCiError."""
    engine = None
    if run.target.application and coolify is not None and not dry_run:
        engine = ensure_engine(
            coolify,
            run.target,
            deploy_timeout=deploy_timeout,
            health_timeout=health_timeout,
            say=say,
        )
    with HasuraClient(run.target.url, run.admin_secret) as client:
        result = apply_metadata(client, run.metadata, say, dry_run=dry_run)
    if engine:
        result.detail = f"{engine}; {result.detail}"
    elif run.target.application and dry_run:
        result.detail += (
            f"; the engine application {run.target.application} is moved to the pinned "
            f"{ENGINE_TAG} first if it runs another tag (Coolify is not read in a dry run)"
        )
    return result


def ensure_engine(
    coolify: Coolify,
    target: HasuraTarget,
    *,
    deploy_timeout: float,
    health_timeout: float,
    say: Say,
) -> str | None:
    """Redeploy the engine's application on ENGINE_TAG when it runs another tag, and wait
    until the engine answers /healthz; what was done, or None when it already ran it."""
    uuid = target.application or ""
    current = coolify.application(uuid).get("docker_registry_image_tag")
    if current == ENGINE_TAG:
        return None
    say(f"hasura engine {uuid}: {current or 'no tag'} -> {ENGINE_TAG} (the pinned engine)")
    coolify.set_image_tag(uuid, ENGINE_TAG)
    for deployment in coolify.deploy(uuids=[uuid]):
        coolify.wait(deployment, timeout=deploy_timeout)
    wait_healthy(target.url, timeout=health_timeout)
    return f"engine {uuid} redeployed on {ENGINE_TAG} (was {current or 'no tag'})"


def wait_healthy(url: str, *, timeout: float, poll: float = HEALTH_POLL) -> None:
    """Poll `<url>/healthz` until the engine answers 200, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=min(10.0, timeout), follow_redirects=False) as client:
        while True:
            try:
                response = client.get(f"{url}/healthz")
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HasuraApiError(
                    f"hasura engine at {url} did not become healthy within {timeout:.0f} s "
                    f"after its redeploy (last: {last}); check the application's logs in "
                    "Coolify, then run `wormhole-ci hasura-apply` again"
                )
            time.sleep(min(poll, remaining))


def hasura_run(manifest: Manifest, env: Environment, admin_secret: str | None) -> HasuraRun | None:
    """The environment's Hasura step with the repository's metadata built now (bad metadata
    fails before anything is contacted); None when the environment has no engine."""
    if env.hasura is None:
        return None
    project = hasura_project(manifest)
    if project is None:
        raise ManifestError(
            f"{manifest.root / MANIFEST_NAME}: environments.{env.name}.hasura is set but no "
            "service is of kind hasura: add the Hasura project as a service, or remove the table"
        )
    if not admin_secret:
        raise SecretError(
            f"environments.{env.name}.hasura: the admin secret is not set: set "
            f"${env.hasura.admin_secret} (GitHub Actions: an environment secret)"
        )
    return HasuraRun(env.hasura, admin_secret, repo_metadata(project, manifest.root))
