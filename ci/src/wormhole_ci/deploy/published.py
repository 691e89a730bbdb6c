"""A deploy of an already published commit (a rollback): every image must be in the registry."""

from __future__ import annotations

from collections.abc import Sequence

from wormhole_ci.errors import DeployRefusedError
from wormhole_ci.images.registry import Registry
from wormhole_ci.images.spec import ImageSpec, Revision
from wormhole_ci.manifest import Environment


def missing_images(
    registry: Registry, address: str, specs: Sequence[ImageSpec], rev: Revision
) -> list[str]:
    """The references of `rev`'s images that `registry` does not hold (read-only)."""
    _, _, prefix = address.partition("/")
    missing: list[str] = []
    for spec in specs:
        repository = f"{prefix}/{spec.repository}" if prefix else spec.repository
        if registry.resolve(repository, rev.short) is None:
            missing.append(f"{address}/{spec.repository}:{rev.short}")
    return missing


def require_published(
    registry: Registry, address: str, specs: Sequence[ImageSpec], rev: Revision, env: str
) -> None:
    """Refuse, before any Coolify call, to deploy a commit whose images were never published."""
    missing = missing_images(registry, address, specs, rev)
    if missing:
        raise DeployRefusedError(
            f"deploy {rev.short} to {env}: not in the registry: {', '.join(missing)}. Nothing "
            "was deployed. Choose a commit that a release published (release.json lists its "
            "images), or release it first"
        )


def check_published(
    env: Environment,
    specs: Sequence[ImageSpec],
    rev: Revision,
    *,
    username: str | None,
    password: str | None,
) -> None:
    """`require_published` against `env`'s registry, anonymous without a password."""
    host = env.registry.partition("/")[0]
    with Registry(host, (username or None) if password else None, password) as registry:
        require_published(registry, env.registry, specs, rev, env.name)
